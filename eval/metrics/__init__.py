"""Benchmark metrics as torchmetrics Metrics (``*Metric``) plus one runner adapter (``*Adapter``) each.

``base`` defines the adapter base (:class:`~mmgt_eval.metrics.base.MetricAdapter`), the Metrics' base
(:class:`~mmgt_eval.metrics.base.RunnerSyncedMetric`) and the :class:`~mmgt_eval.metrics.base.VideoSample`
the runner loads; each metric module (``fid``, ``fvd``, ``sync``, ``bas``, ``fgd``, ``diversity``, ``image``,
...) holds a functional core, a ``*Metric`` and an ``*Adapter``; ``fvd_protocol``, ``kinetic``,
``diversity_sets``, ``keypoints`` and ``onset`` hold the FVD protocol variants, the kinetic features, the
Diversity set statistics, the shared keypoint helpers and the audio onset detector. docs/metrics.md lists
each metric's reference and default variant.
"""
