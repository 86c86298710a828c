"""Benchmark metrics as torchmetrics ``Metric`` classes plus one runner adapter each.

``base`` defines the adapter protocol (:class:`~mmgt_eval.metrics.base.VideoMetric`) and the
:class:`~mmgt_eval.metrics.base.VideoSample` the runner loads; each metric module (``fid``, ``fvd``,
``sync``, ``gesture``, ``diversity``, ``image``, ...) holds a functional core, a ``Metric`` and an adapter;
``fvd_protocol``, ``kinetic`` and ``diversity_sets`` hold the FVD protocol variants, the kinetic features and
the Diversity set statistics. docs/metrics.md lists each metric's reference and default variant.
"""
