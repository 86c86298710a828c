"""FVD protocols: which videos are kept, which frames each clip takes, the cap, how the detector is called.

Two variants (:data:`FVD_PROTOCOLS`, selected with ``protocol.variant`` in ``conf/eval/metrics/fvd.yaml``;
the name is the results' ``variant``):

* :class:`StyleGANVProtocol` (``stylegan_v``, **default**): ``universome/stylegan-v@3fecd69`` exactly
  (``src/metrics/{metric_main,frechet_video_distance,metric_utils}.py``, ``src/training/dataset.py``;
  checked against ``../shared/fixtures/metrics_reference/stylegan_v_fvd_sampling.json``):

  - metrics ``fvd2048_16f`` (n_frames 16), ``fvd2048_128f`` (128) and ``fvd2048_128f_subsample8f``
    (16 frames, frame_stride 8);
  - a reference video is kept iff ``L >= n_frames * frame_stride`` (``dataset.py:323``; not the span
    ``(n_frames - 1) * frame_stride + 1``: with stride 8 a 121..127-frame video is dropped);
  - one clip per video: reference frames ``offset + frame_stride * (0 .. n_frames-1)`` with ``offset =
    randint(0, L - n_frames * frame_stride + frame_stride - 1)`` (Python ``random``, both ends inclusive),
    generated frames ``frame_stride * (0 .. n_frames-1)`` (offset 0);
  - a generated video shorter than ``n_frames * frame_stride`` makes StyleGAN-V's whole run fail
    (``assert`` at ``dataset.py:400``): here the metric fails with that count, other metrics still run;
  - at most 2048 videos per side: the first in sorted name order (after dropping short reference videos);
  - the detector gets uint8 (B, 3, T, H, W) at the stored resolution with ``rescale=True, resize=True,
    return_features=True``; nothing is resized or rescaled outside it;
  - features cast to float32, summed in float64, covariance ÷N.

  One deliberate difference: StyleGAN-V draws offsets from Python's global ``random`` inside its 3 DataLoader
  workers (seeded from torch's global generator, which it never seeds), so its offsets are not reproducible
  between runs. Here each reference video's offset comes from ``random.Random((seed << 32) + crc32(name))``
  with the same ``randint`` call: same distribution, reproducible, and independent of video order and ranks.
* :class:`ClipSamplingProtocol` (``clip_sampling``): our configurable protocol (several clips per video,
  non-overlapping or start sampling, ÷(N-1), our own resize outside the detector, short videos skipped on
  both sides, no cap). Its settings that StyleGAN-V does not have are listed in its ``as_dict()``.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

SAMPLING_STRATEGIES = ("start", "random", "non_overlapping")
I3D_VARIANTS = ("stylegan-v-torchscript",)
STYLEGAN_V_REFERENCE = "universome/stylegan-v@3fecd69c602e1cda204357201461c0fb0a634909"


@dataclass(frozen=True)
class FVDProtocol:
    """Settings every FVD protocol has; subclasses define the rules (:data:`FVD_PROTOCOLS`).

    Attributes:
        n_frames: frames per clip.
        frame_stride: step between the frames of a clip.
        seed: seeds the random clip offsets (per video name).
    """

    variant: ClassVar[str] = ""
    n_frames: int = 16
    frame_stride: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.frame_stride < 1:
            raise ValueError(f"n_frames and frame_stride must be >= 1: {self}")

    @property
    def clip_span(self) -> int:
        """Frames of the source video one clip covers."""
        return (self.n_frames - 1) * self.frame_stride + 1

    # the rules ------------------------------------------------------------------------------------------
    covariance_ddof: ClassVar[int] = 0
    max_videos: int | None = None
    internal_detector_call = True  # per instance for ClipSamplingProtocol (its detector_call field)

    def min_video_frames(self, real: bool) -> int:
        """Shortest video whose clip(s) are used on that side."""
        raise NotImplementedError

    def short_generated_fails(self) -> bool:
        """True when a too-short generated video must make the metric fail (StyleGAN-V), not be skipped."""
        return False

    def short_is_error(self) -> bool:
        """True when any too-short video is an input error at once."""
        return False

    def clip_frame_indices(
        self, n_video_frames: int, real: bool, key: str, rng: random.Random | None = None
    ) -> np.ndarray:
        """Frame indices (n_clips, n_frames) int64 of one video's clips; (0, n_frames) when too short.

        ``key`` (the video name) and :attr:`seed` seed random offsets; ``rng`` replaces StyleGAN-V's
        per-video ``random.Random`` (e.g. to force offsets in tests).
        """
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict, with ``variant`` first."""
        return {"variant": self.variant, **asdict(self)}

    @classmethod
    def from_any(cls, protocol: FVDProtocol | Mapping | None) -> FVDProtocol:
        """A protocol, a mapping of fields with an optional ``variant`` (default ``stylegan_v``), or None."""
        if protocol is None:
            return StyleGANVProtocol()
        if isinstance(protocol, FVDProtocol):
            return protocol
        fields = {str(k): v for k, v in protocol.items()}
        name = fields.pop("variant", DEFAULT_FVD_PROTOCOL)
        if name not in FVD_PROTOCOLS:
            raise ValueError(f"unknown FVD protocol variant {name!r}; known: {', '.join(FVD_PROTOCOLS)}")
        try:
            return FVD_PROTOCOLS[name](**fields)
        except TypeError as err:
            raise ValueError(f"FVD protocol {name!r}: {err}") from err


def _rng(seed: int, key: str) -> random.Random:
    return random.Random((int(seed) << 32) + zlib.crc32(key.encode("utf-8")))


@dataclass(frozen=True)
class StyleGANVProtocol(FVDProtocol):
    """StyleGAN-V's FVD rules exactly (module docstring); ``max_videos`` = 2048 (``fvd2048_*``)."""

    variant: ClassVar[str] = "stylegan_v"
    max_videos: int | None = 2048

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_videos is not None and self.max_videos < 1:
            raise ValueError(f"max_videos must be >= 1 or null, got {self.max_videos}")

    @property
    def metric_name(self) -> str:
        """The StyleGAN-V metric these settings are (or ``custom``)."""
        known = {(16, 1): "fvd2048_16f", (128, 1): "fvd2048_128f", (16, 8): "fvd2048_128f_subsample8f"}
        name = known.get((self.n_frames, self.frame_stride), "custom")
        return name if self.max_videos == 2048 else "custom"

    def min_video_frames(self, real: bool) -> int:
        """``n_frames * frame_stride`` for both sides (StyleGAN-V dataset.py)."""
        return self.n_frames * self.frame_stride  # dataset.py:323-324 (real); :400 assert (generated)

    def short_generated_fails(self) -> bool:
        """True: StyleGAN-V fails on a too-short generated video."""
        return True

    def clip_frame_indices(
        self, n_video_frames: int, real: bool, key: str, rng: random.Random | None = None
    ) -> np.ndarray:
        """StyleGAN-V sampling: one clip per video, random offset (reference) or start (generated)."""
        steps = np.arange(0, self.n_frames * self.frame_stride, self.frame_stride, dtype=np.int64)
        if n_video_frames < self.min_video_frames(real):
            return np.zeros((0, self.n_frames), dtype=np.int64)
        offset = 0
        if real:  # dataset.py:403: randint(0, L - n * sf + sf - 1), both ends inclusive
            high = n_video_frames - self.n_frames * self.frame_stride + self.frame_stride - 1
            offset = (rng or _rng(self.seed, key)).randint(0, high)
        return (offset + steps)[None, :]

    def as_dict(self) -> dict[str, Any]:
        """The fields plus the StyleGAN-V reference and its keep rule."""
        return {
            **super().as_dict(),
            "reference_implementation": f"{STYLEGAN_V_REFERENCE} ({self.metric_name})",
            "keep_rule": "reference video kept iff L >= n_frames * frame_stride; a shorter generated video "
            "fails the metric (StyleGAN-V's run fails on it)",
            "clips": "one per video; reference offset "
            "randint(0, L - n_frames*frame_stride + frame_stride - 1), generated offset 0; "
            "frames offset + frame_stride * (0 .. n_frames-1)",
            "offset_rng": "random.Random((seed << 32) + crc32(video name)) per reference video "
            "(StyleGAN-V: unseeded global random in 3 DataLoader workers; same distribution)",
            "cap": "the first max_videos videos per side in sorted name order (after dropping short "
            "reference videos)",
            "detector_call": "internal: uint8 (B, 3, T, H, W) at the stored size, "
            "detector(x, rescale=True, resize=True, return_features=True)",
            "covariance_ddof": self.covariance_ddof,
            "i3d": I3D_VARIANTS[0],
        }


@dataclass(frozen=True)
class ClipSamplingProtocol(FVDProtocol):
    """Our configurable protocol (not StyleGAN-V's; :meth:`as_dict` lists the differences).

    Attributes (besides :class:`FVDProtocol`'s):
        resolution: side of the square frames are squash-resized to (``detector_call="external"``).
        reference_sampling / generated_sampling: ``"start"`` (frame 0, one clip), ``"random"``
            (``clips_per_video`` distinct random offsets, ``numpy.random.default_rng([seed, crc32(name)])``),
            ``"non_overlapping"`` (consecutive clips from frame 0, at most ``clips_per_video``; 0 = all).
        clips_per_video: see above (ignored by ``"start"``).
        covariance_ddof: 0 for ÷N (StyleGAN-V), 1 for ÷(N−1) (TF-GAN, JunyaoHu).
        i3d: detector variant (only ``"stylegan-v-torchscript"``).
        detector_call: ``"external"`` (bilinear squash-resize to ``resolution`` and [-1, 1] here, then
            ``rescale=False, resize=False``; JunyaoHu's ``styleganv`` path for square videos) or
            ``"internal"`` (as StyleGAN-V).
        short_videos: ``"skip"`` (counted, both sides) or ``"error"``; a video is short below the span.
        max_videos: cap per side (first in sorted name order); None = no cap.
    """

    variant: ClassVar[str] = "clip_sampling"
    resolution: int = 224
    reference_sampling: str = "random"
    generated_sampling: str = "start"
    clips_per_video: int = 1
    covariance_ddof: int = 0  # a field here, a constant in StyleGAN-V
    i3d: str = "stylegan-v-torchscript"
    detector_call: str = "external"
    short_videos: str = "skip"
    max_videos: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {self.resolution}")
        for field in ("reference_sampling", "generated_sampling"):
            if getattr(self, field) not in SAMPLING_STRATEGIES:
                raise ValueError(
                    f"{field} must be one of {SAMPLING_STRATEGIES}, got {getattr(self, field)!r}"
                )
        if self.clips_per_video < 0:
            raise ValueError(f"clips_per_video must be >= 0, got {self.clips_per_video}")
        if self.covariance_ddof not in (0, 1):
            raise ValueError(f"covariance_ddof must be 0 or 1, got {self.covariance_ddof}")
        if self.i3d not in I3D_VARIANTS:
            raise ValueError(f"i3d must be one of {I3D_VARIANTS}, got {self.i3d!r}")
        if self.detector_call not in ("external", "internal"):
            raise ValueError(f"detector_call must be 'external' or 'internal', got {self.detector_call!r}")
        if self.short_videos not in ("skip", "error"):
            raise ValueError(f"short_videos must be 'skip' or 'error', got {self.short_videos!r}")
        if self.max_videos is not None and self.max_videos < 1:
            raise ValueError(f"max_videos must be >= 1 or null, got {self.max_videos}")

    @property
    def internal_detector_call(self) -> bool:
        """True when the detector is called with its own resize/normalisation."""
        return self.detector_call == "internal"

    def min_video_frames(self, real: bool) -> int:
        """``clip_span`` for both sides."""
        return self.clip_span

    def short_is_error(self) -> bool:
        """True when ``short_videos`` is ``error``."""
        return self.short_videos == "error"

    def clip_frame_indices(
        self, n_video_frames: int, real: bool, key: str, rng: random.Random | None = None
    ) -> np.ndarray:
        """``clips_per_video`` clips per video, sampled per side by this protocol's sampling rules."""
        span = self.clip_span
        steps = np.arange(self.n_frames, dtype=np.int64) * self.frame_stride
        if n_video_frames < span:
            return np.zeros((0, self.n_frames), dtype=np.int64)
        n_starts = n_video_frames - span + 1
        strategy = self.reference_sampling if real else self.generated_sampling
        if strategy == "start":
            starts = np.zeros(1, dtype=np.int64)
        elif strategy == "random":
            k = min(max(self.clips_per_video, 1), n_starts)
            gen = np.random.default_rng([self.seed, zlib.crc32(key.encode("utf-8"))])  # ``rng`` unused here
            starts = np.sort(gen.choice(n_starts, size=k, replace=False)).astype(np.int64)
        else:  # non_overlapping
            starts = np.arange(0, n_starts, span, dtype=np.int64)
            if self.clips_per_video > 0:
                starts = starts[: self.clips_per_video]
        return starts[:, None] + steps[None, :]

    def as_dict(self) -> dict[str, Any]:
        """The fields plus how they differ from StyleGAN-V's protocol."""
        differs = []
        if self.reference_sampling != "random" or self.generated_sampling != "start":
            differs.append("sampling (StyleGAN-V: reference random, generated start)")
        if self.clips_per_video != 1:
            differs.append("clips_per_video != 1")
        differs.append("keeps videos of >= (n_frames-1)*frame_stride+1 frames (StyleGAN-V: n_frames*stride)")
        if self.short_videos == "skip":
            differs.append("short generated videos are skipped (StyleGAN-V fails)")
        if self.covariance_ddof != 0:
            differs.append("covariance /(N-1) (StyleGAN-V: /N)")
        if self.detector_call == "external":
            differs.append("resize + [-1, 1] outside the detector (StyleGAN-V: rescale=True, resize=True)")
        if self.max_videos != 2048:
            differs.append(f"cap {self.max_videos} videos per side (StyleGAN-V: 2048)")
        return {
            **super().as_dict(),
            "reference_implementation": f"none: the project's clip protocol (detector and statistics as "
            f"{STYLEGAN_V_REFERENCE}; detector_call=external is JunyaoHu common_metrics_on_video_quality's "
            "styleganv path for square videos)",
            "differs_from_stylegan_v": differs,
        }


FVD_PROTOCOLS: dict[str, type[FVDProtocol]] = {
    p.variant: p for p in (StyleGANVProtocol, ClipSamplingProtocol)
}
"""FVD protocol variants by name."""
DEFAULT_FVD_PROTOCOL = "stylegan_v"


def clip_frame_indices(n_video_frames: int, protocol: FVDProtocol, real: bool, key: str) -> np.ndarray:
    """Frame indices (n_clips, n_frames) of one video (:meth:`FVDProtocol.clip_frame_indices`)."""
    return protocol.clip_frame_indices(n_video_frames, real, key)
