"""Benchmark metrics as torchmetrics ``Metric`` classes plus one runner adapter each.

``base`` defines the adapter protocol (:class:`~mmgt_eval.metrics.base.VideoMetric`) and the
:class:`~mmgt_eval.metrics.base.VideoSample` the runner loads; each metric module (``fid``, ``fvd``,
``sync``, ``gesture``, ``image``) holds a functional core, a ``Metric`` and an adapter.
"""
