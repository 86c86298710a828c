"""Benchmark metrics as torchmetrics ``Metric`` classes plus one runner adapter each.

``base`` defines the adapter protocol (:class:`~mmgt_eval.metrics.base.MetricAdapter`) and the
:class:`~mmgt_eval.metrics.base.VideoSample` the runner loads; each metric module (``fid``, ``fvd``,
``sync``, ``bas``, ``fgd``, ``diversity``, ``image``, ...) holds a functional core, a ``Metric`` and an
adapter; ``fvd_protocol``, ``kinetic``, ``diversity_sets``, ``keypoints`` and ``onset`` hold the FVD protocol
variants, the kinetic features, the Diversity set statistics, the shared keypoint helpers and the audio onset
detector (``gesture`` only re-exports their old names). docs/metrics.md lists each metric's reference and
default variant.
"""
