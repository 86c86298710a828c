"""Lip-audio correlation: a weight-free lip-sync proxy, on the video's pixels or on its keypoints.

Definition (this project's; stated because papers use several):

* lip opening ``o[t]`` = distance between the inner-lip iBUG points 62 and 66 of frame ``t``
  (:func:`mmgt.schema.lip_opening`, frame units);
* audio envelope ``e[t]`` = RMS of the 16 kHz samples ``[t * 640, (t + 1) * 640)`` of video frame ``t``
  (25 fps; zero-padded at the end);
* per video: Pearson r of ``o`` and ``e`` over the frames where both lip points are visible
  (confidence >= :data:`mmgt.schema.VISIBILITY_THRESHOLD`), optionally maximised over lags
  ``|k| <= max_lag`` frames (``o[t + k]`` vs ``e[t]``; the lag is reported);
* a video with fewer than ``min_frames`` valid frames, or a constant opening or envelope, is skipped
  (declared, never NaN);
* reported: the mean r over videos (``lip_audio_r``, higher is better) and the same for the references
  (``lip_audio_r_reference``, context: the ground truth's value under the same definition).

Two adapters, two names, one definition; the results say which was scored (``protocol.source``):

* ``lip_audio`` (:class:`LipAudioAdapter`, ``source: pixels``): the lips are detected on the video's own
  frames (mediapipe FaceMesh, :class:`mmgt.pose_detect.FaceLandmarkDetector`; frames without a face count
  as invisible lips). This is the one for generated videos (Stage II): it measures what the video shows.
* ``lip_audio_pose`` (:class:`LipAudioPoseAdapter`, ``source: keypoints``): the lips are read from the
  keypoints beside the video (``<stem>.npy`` / ``keypoints.npy``). For Stage I outputs, whose keypoints are
  the output; on a Stage II video they are the driving poses, so it would score the input, not the video.

It measures whether the mouth opens when there is sound - the relation the toy speakers are built on -
not phoneme-level sync (that is Sync-C/D with SyncNet weights). On real speech the relation is weaker and
the mouth leads the sound by a few frames: ``max_lag`` 2 (80 ms at 25 fps) is the pixel metric's default.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torchmetrics
from torch import Tensor

from mmgt.dsp import frame_rms
from mmgt.schema import (
    FPS,
    LIP_BOTTOM_INNER,
    LIP_TOP_INNER,
    SAMPLE_RATE,
    VISIBILITY_THRESHOLD,
    lip_opening,
)
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    VideoSkipped,
)

KEYPOINTS_SOURCE = "keypoints"
PIXELS_SOURCE = "pixels"


def lip_audio_correlation(
    keypoints: np.ndarray, audio: np.ndarray, fps: float = FPS, max_lag: int = 0, min_frames: int = 10
) -> tuple[float, int] | None:
    """Pearson r of lip opening and audio envelope of one video, and the lag in frames; None if undefined.

    Args:
        keypoints: (T, 134, 3) stored-layout keypoints.
        audio: (N,) mono 16 kHz.
        fps: frame rate of the keypoints.
        max_lag: also try ``o[t + k]`` vs ``e[t]`` for ``|k| <= max_lag`` and keep the best r.
        min_frames: fewer valid frames -> None.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.ndim != 3 or kps.shape[1:] != (134, 3):
        raise MetricInputError(f"lip_audio: keypoints must be (T, 134, 3), got {kps.shape}")
    opening = np.asarray(lip_opening(kps))
    valid = (kps[:, LIP_TOP_INNER, 2] >= VISIBILITY_THRESHOLD) & (
        kps[:, LIP_BOTTOM_INNER, 2] >= VISIBILITY_THRESHOLD
    )
    env = frame_rms(audio, len(kps), fps)
    best: tuple[float, int] | None = None
    for lag in range(-max_lag, max_lag + 1):
        o = opening[max(lag, 0) : len(opening) + min(lag, 0)]
        v = valid[max(lag, 0) : len(valid) + min(lag, 0)]
        e = env[max(-lag, 0) : len(env) + min(-lag, 0)]
        o, e = o[v], e[v]
        if len(o) < min_frames or o.std() < 1e-9 or e.std() < 1e-12:
            continue
        r = float(np.corrcoef(o, e)[0, 1])
        if best is None or r > best[0]:
            best = (r, lag)
    return best


class LipAudioCorrelationMetric(RunnerSyncedMetric):
    """Mean per-video lip-audio Pearson r (states: float64 sum of r and a count; sync by sum)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    r_sum: Tensor
    n_videos: Tensor
    n_skipped: Tensor

    def __init__(self, max_lag: int = 0, min_frames: int = 10) -> None:
        super().__init__()
        self.max_lag, self.min_frames = int(max_lag), int(min_frames)
        self.add_state("r_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_videos", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_skipped", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.last: tuple[float, int] | None = None

    def update(self, keypoints: np.ndarray, audio: np.ndarray, fps: float = FPS) -> None:
        """Add one video; ``last`` holds its (r, lag) or None when it was skipped."""
        found = lip_audio_correlation(keypoints, audio, fps, self.max_lag, self.min_frames)
        if found is None:
            self.last = None
            self.n_skipped += 1
        else:
            self.add(*found)

    def add(self, r: float, lag: int = 0) -> None:
        """Add one video whose r is known (e.g. 0 for a mouth that does not move)."""
        self.last = (float(r), int(lag))
        self.r_sum += float(r)
        self.n_videos += 1

    def compute(self) -> Tensor:
        """Mean r over the scored videos."""
        if int(self.n_videos) == 0:
            raise MetricInputError(
                "lip_audio: no video could be scored (no visible lips, silence or too short)"
            )
        return self.r_sum / self.n_videos


class _LipAudioBaseAdapter(MetricAdapter):
    """Runner adapter of :class:`LipAudioCorrelationMetric`.

    Subclasses say where the lips come from (:meth:`lips`).

    Audio: the generated video's own track, else the reference's. With ``score_reference`` the reference's
    lips (from the same source) are scored with the same audio (``lip_audio_r_reference``).
    """

    name: ClassVar[str]
    source: ClassVar[str]
    """``pixels`` or ``keypoints``: written into the results' protocol."""
    variant = "mmgt"
    """A project definition (no published reference); ``source`` says pixels or keypoints."""
    higher_is_better = True
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "lip_audio_r": True,
        "lip_audio_r_reference": None,
        "lip_audio_clips": None,
        "lip_audio_lag": None,
        "lip_audio_face_rate": None,
        "lip_audio_still_clips": None,
        "lip_audio_still": None,
    }
    needs_reference = False

    def __init__(self, max_lag: int = 0, min_frames: int = 10, score_reference: bool = True) -> None:
        self.generated = LipAudioCorrelationMetric(max_lag, min_frames)
        self.reference = LipAudioCorrelationMetric(max_lag, min_frames)
        self.score_reference = bool(score_reference)

    def lips(self, sample: VideoSample) -> np.ndarray:
        """(T, 134, 3) stored-layout keypoints whose inner lips are scored; raises VideoSkipped."""
        raise NotImplementedError

    def observed(self, sample: VideoSample, kps: np.ndarray) -> dict[str, float]:
        """Per-video extras of the generated video's lips (the pixel metric's face rate); none here."""
        return {}

    def correlate(
        self, acc: LipAudioCorrelationMetric, kps: np.ndarray, audio: np.ndarray, fps: float
    ) -> bool:
        """Add one video's r to ``acc``; True when it was scored as a still mouth (the pixel metric)."""
        acc.update(kps, audio, fps)
        return False

    def _skip_reason(self, sample: VideoSample, kps: np.ndarray) -> str:
        return f"{self.name}: lips invisible, silent audio or too few frames"

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Score one video (and its reference); per-video r (and lag when ``max_lag`` > 0)."""
        audio = generated.audio if generated.audio is not None else (reference.audio if reference else None)
        if audio is None:
            raise VideoSkipped(generated.name, f"{self.name}: no audio track (generated or reference)")
        kps = self.lips(generated)
        out = self.observed(generated, kps)
        if self.score_reference and reference is not None:
            try:
                ref_kps = self.lips(reference)
            except VideoSkipped:
                ref_kps = None
            if ref_kps is not None:
                self.correlate(self.reference, ref_kps, audio, reference.fps)
                if self.reference.last is not None:
                    out["lip_audio_r_reference"] = self.reference.last[0]
        if self.correlate(self.generated, kps, audio, generated.fps):
            out["lip_audio_still"] = 1.0
        if self.generated.last is None:
            raise VideoSkipped(generated.name, self._skip_reason(generated, kps))
        out["lip_audio_r"] = self.generated.last[0]
        if self.generated.max_lag:
            out["lip_audio_lag"] = float(self.generated.last[1])
        return out

    def compute(self) -> dict[str, float]:
        """Mean r of the generated (and reference) videos and the number of scored videos."""
        out = {"lip_audio_clips": int(self.generated.n_videos)}
        n_ref = int(self.reference.n_videos)
        out["lip_audio_r"] = float(self.generated.compute())
        if n_ref:
            out["lip_audio_r_reference"] = float(self.reference.compute())
        return out

    def _lips_protocol(self) -> dict[str, Any]:
        raise NotImplementedError

    def protocol(self) -> dict:
        """The definition, where the lips come from, and the parameters."""
        return {
            "metric": self.name,
            "source": self.source,
            **self._lips_protocol(),
            "definition": "Pearson r of the inner-lip opening (iBUG 62-66) and the audio RMS per video frame",
            "envelope": f"RMS of {SAMPLE_RATE // FPS} samples per frame at {SAMPLE_RATE} Hz",
            "max_lag_frames": self.generated.max_lag,
            "min_frames": self.generated.min_frames,
            "visibility_threshold": VISIBILITY_THRESHOLD,
            "aggregation": "mean over videos",
            "score_reference": self.score_reference,
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """Generated and reference accumulators."""
        return [self.generated, self.reference]


class LipAudioPoseAdapter(_LipAudioBaseAdapter):
    """``lip_audio_pose``: the lips of the keypoints beside each video (Stage I outputs: the generated poses).

    On a video rendered from given poses (Stage II) this scores those poses, not the video: use
    :class:`LipAudioAdapter` there.
    """

    name = "lip_audio_pose"
    source = KEYPOINTS_SOURCE

    def lips(self, sample: VideoSample) -> np.ndarray:
        """The sample's stored keypoints (T, K, 3); skips the video when it has none."""
        if sample.keypoints is None:
            raise VideoSkipped(sample.name, sample.missing_keypoints(self.name))
        return sample.keypoints

    def _lips_protocol(self) -> dict[str, Any]:
        return {"lips": "the keypoints file beside each video (<stem>.npy or keypoints.npy), not its pixels"}


class LipAudioAdapter(_LipAudioBaseAdapter):
    """``lip_audio``: the lips detected on each video's own frames (mediapipe FaceMesh, offline).

    Frames are scored at the size the runner hands over (the protocol's ``resize``). A video in which
    FaceMesh finds no face on at least ``min_frames`` frames is skipped with that reason - never scored from
    its keypoints file. A mouth that does not move - the lip opening's std over the frames with a face
    below ``still_std`` (a fraction of the frame side; FaceMesh jitters by ~0.0005 on a repeated still
    frame, talking mouths move by 0.007-0.02) - scores r = 0: no relation to the audio, instead of a
    correlation with the detector's jitter (``lip_audio_still_clips`` counts them).
    ``lip_audio_face_rate``: the mean fraction of generated frames with a face.

    Args:
        max_lag, min_frames, score_reference: as :class:`LipAudioCorrelationMetric` / the base adapter.
        still_std: lip-opening std (frame fraction) below which the mouth counts as still.
        min_detection_confidence, min_tracking_confidence: FaceMesh thresholds.
    """

    name = "lip_audio"
    source = PIXELS_SOURCE

    def __init__(
        self,
        max_lag: int = 2,
        min_frames: int = 10,
        score_reference: bool = True,
        still_std: float = 0.002,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        from mmgt.pose_detect import FaceLandmarkDetector

        super().__init__(max_lag, min_frames, score_reference)
        self.still_std = float(still_std)
        self.n_still = torchmetrics.SumMetric(sync_on_compute=False)  # the runner syncs it
        self.detector = FaceLandmarkDetector(
            min_detection_confidence=min_detection_confidence, min_tracking_confidence=min_tracking_confidence
        )
        self.face_rate = torchmetrics.MeanMetric(sync_on_compute=False)

    def lips(self, sample: VideoSample) -> np.ndarray:
        """Face-mesh keypoints (T, K, 3) detected on the sample's frames."""
        return self.detector.detect_frames(sample.frames)

    def observed(self, sample: VideoSample, kps: np.ndarray) -> dict[str, float]:
        """Record and return the fraction of frames whose inner top lip is visible."""
        rate = float((kps[:, LIP_TOP_INNER, 2] >= VISIBILITY_THRESHOLD).mean()) if len(kps) else 0.0
        self.face_rate.update(rate)
        return {"lip_audio_face_rate": rate}

    def correlate(
        self, acc: LipAudioCorrelationMetric, kps: np.ndarray, audio: np.ndarray, fps: float
    ) -> bool:
        """Add the visible frames' lip/audio correlation to ``acc``; True when a still mouth scored 0."""
        valid = (kps[:, LIP_TOP_INNER, 2] >= VISIBILITY_THRESHOLD) & (
            kps[:, LIP_BOTTOM_INNER, 2] >= VISIBILITY_THRESHOLD
        )
        opening = np.asarray(lip_opening(kps.astype(np.float64)))[valid]
        still = len(opening) >= acc.min_frames and float(opening.std()) < self.still_std
        if still and float(frame_rms(audio, len(kps), fps).std()) >= 1e-12:
            acc.add(0.0, 0)
            if acc is self.generated:
                self.n_still.update(1.0)
            return True
        acc.update(kps, audio, fps)
        return False

    def compute(self) -> dict[str, float]:
        """The base values plus the mean fraction of generated frames with a face and the still mouths."""
        out = super().compute()
        if float(self.face_rate.weight) > 0:
            out["lip_audio_face_rate"] = float(self.face_rate.compute())
        out["lip_audio_still_clips"] = int(self.n_still.sum_value)  # synced state (no update: 0)
        return out

    def _skip_reason(self, sample: VideoSample, kps: np.ndarray) -> str:
        n_face = int((kps[:, LIP_TOP_INNER, 2] >= VISIBILITY_THRESHOLD).sum())
        if n_face < self.generated.min_frames:
            return (
                f"{self.name}: mediapipe FaceMesh found a face on {n_face} of {len(kps)} frames "
                f"({sample.frames.shape[2]}x{sample.frames.shape[1]}); {self.generated.min_frames} needed"
            )
        return f"{self.name}: constant lip opening or silent audio on the {n_face} frames with a face"

    def _lips_protocol(self) -> dict[str, Any]:
        return {
            "lips": "detected on the video frames (at the protocol size) by mediapipe FaceMesh: mesh points "
            "13 / 14 = iBUG 62 / 66; frames without a face are invisible lips",
            "detector": {"name": "mediapipe.solutions.face_mesh", **self.detector.settings},
            "still_mouth": f"lip-opening std < {self.still_std} of the frame side: r = 0",
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The generated, reference, face-rate and still-count states synced by the runner."""
        return [self.generated, self.reference, self.face_rate, self.n_still]
