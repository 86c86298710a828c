"""``mmgt.conf.eval``: the metrics and protocol groups of ``mmgt-eval`` (``pkg://mmgt.conf.eval`` on its
search path, conf/eval.yaml)."""
