"""``mmgt.conf.eval``: the metric and protocol groups of ``mmgt-eval`` (``pkg://mmgt.conf.eval`` on its
search path, conf/eval.yaml)."""
