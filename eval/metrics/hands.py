"""Pose following, detector-free: skin-coloured hand blobs found on the frames vs the driving hands.

Definition (this project's; ``hands``), per pair of a generated video and its reference, whose keypoints
((T, 134, 3), :mod:`mmgt.schema` layout) are the driving pose of the generated video:

* **Skin colour**: the reference's is the median RGB of its *first* frame at the visible palm keypoints of
  the driving pose's first frame (wrist and the five finger bases of both hands, confidence >=
  :data:`mmgt.schema.VISIBILITY_THRESHOLD`); with no hand visible there, at the two cheeks (midway between
  iBUG jaw 3 / 13 and nose wing 31 / 35); with neither, the video is skipped (declared;
  ``hand_skin_from_face``: the fraction of videos whose colour came from the cheeks). The generated video's
  (``calibrate_on``): ``own`` (default) - the best (lowest ``hand_error``) of the reference's colour and two
  taken from the video's own first frame, its pixels at the palm keypoints and the pixels of its hand boxes
  nearest the reference's colour (:func:`matched_skin`), so that a generator's colour drift (a VAE's) or
  hands drawn a few pixels off are not counted as misses (the benefit of the doubt: never above
  ``reference``); ``reference`` - the reference's colour and tolerance. The reference video is always scored
  with its own.
* **Tolerance** per video: ``colour_tol``, at most ``background_margin`` times how close the other colours
  come to the skin (:func:`background_distance`: the 1 % quantile of the RGB distance to the skin colour of
  the same first frame's pixels off its face and hand boxes, expanded ``face_expand`` and ``hand_expand``),
  so a background or shirt near the skin colour is not taken for hands (the per-video ``hand_colour_tol``).
* **Hand pixels** of a frame: RGB (0-255) within the tolerance (Euclidean) of the skin colour and outside
  the face box (the box of that frame's visible face keypoints, expanded ``face_expand`` times around its
  centre); its connected components (:func:`scipy.ndimage.label`, 8-connected) of ``min_area`` to
  ``max_area`` of the frame's pixels (larger ones are skin-coloured background, not hands); the two largest
  are the frame's hands, at their centroids. When two hands are driven and one blob is found (hands that
  touch), the blob is split in two by 2-means of its pixel positions (:func:`split_in_two`; without it,
  touching hands cost a whole hand width).
* **Driving hands** of a frame: the mean x, y of each hand's visible keypoints (a hand with none is not
  driven in that frame; frames with no driven hand are left out).
* **Cost** of a driving hand: the distance (in fractions of the frame side; x by the width, y by the
  height) to the blob it is assigned, capped at ``miss_penalty``, and ``miss_penalty`` when it has no
  blob; the assignment of blobs to driving hands is the cheaper of the (at most two) one-to-one ones (one
  blob: each driving hand's; :func:`match_costs`).
* **Per video**: ``hand_error`` the mean cost over driving hands of all scored frames (``hand_error_px``
  the same in pixels of the generated frames' width), ``hand_detect`` the fraction of them matched within
  ``hit_radius``; and the same on the reference video itself against the same keypoints
  (``hand_error_reference``, ``hand_detect_reference``): the floor of this detector on real frames.
  Reported as means over videos.

A video that follows its driving pose keeps its hands where the keypoints put them (``hand_error`` near the
reference's floor); a still frame keeps them where they were (``hand_error`` grows with how far the hands
travel). It relies on hands being the only skin-coloured regions below the face (the toy speakers with long
sleeves); a speaker whose shirt, hair or background lies within ``colour_tol`` of the skin raises the floor,
which ``hand_error_reference`` shows; the tolerance's calibration keeps it off. Measured on the 24
long-sleeved toy speakers of seeds 0 and 1 (12 each; 2 s clips, 64 and 128 px, raw and mp4-decoded,
defaults): floors 0.005-0.014 of the side (detection >= 0.99), the first frame repeated 0.025-0.062, at
least 2.9 times the floor. Through a toy VAE (800 steps, 23-27 dB) the reconstructions of 6 of 8 speakers
stay at the floor (0.005-0.010; their first frames repeated 0.028-0.052); the two whose background or shirt
lies within ~30 RGB units of the skin are partly lost in the VAE's colour blur (0.05-0.06; their stills
0.04-0.12). Meant for frames of 64 px and more: at 32 px a palm is two pixels and the skin colour is off.
With bare forearms (the toy's short sleeves) the forearms' skin drives the tolerance to about 0 and every
hand is missed (``hand_error_reference`` = ``miss_penalty``): not measurable there, and the floor says so.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import torch
import torchmetrics
from scipy import ndimage
from torch import Tensor

from mmgt.schema import FACE, FACE_OFFSET, LEFT_HAND, RIGHT_HAND, VISIBILITY_THRESHOLD
from mmgt_eval.metrics.base import (
    MetricAdapter,
    MetricInputError,
    RunnerSyncedMetric,
    VideoSample,
    VideoSkipped,
)

HANDS: tuple[range, ...] = (LEFT_HAND, RIGHT_HAND)
PALM: tuple[int, ...] = (0, 1, 5, 9, 13, 17)
"""Local hand indices of the palm: the wrist and the five finger bases."""
CHEEKS: tuple[tuple[int, int], ...] = (
    (FACE_OFFSET + 3, FACE_OFFSET + 31),
    (FACE_OFFSET + 13, FACE_OFFSET + 35),
)
"""(jaw, nose wing) keypoint pairs whose midpoints are the cheeks (the skin colour's fallback)."""


def _pixels(frame: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """RGB (N, 3) of ``frame`` (H, W, 3) at normalised points ``xy`` (N, 2) (nearest pixel, clipped)."""
    h, w = frame.shape[:2]
    cols = np.clip(np.floor(xy[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip(np.floor(xy[:, 1] * h).astype(int), 0, h - 1)
    return frame[rows, cols].astype(np.float64)


def skin_colour(frame: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, str] | None:
    """(median RGB (3,), ``"palms"`` | ``"cheeks"``) of a frame (H, W, 3) with its keypoints (134, 3).

    None when neither a palm point nor both points of a cheek are visible.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    palm = [hand.start + i for hand in HANDS for i in PALM]
    pts = kps[palm][kps[palm, 2] >= VISIBILITY_THRESHOLD, :2]
    if len(pts):
        return np.median(_pixels(frame, pts), axis=0), "palms"
    cheeks = [
        (kps[a, :2] + kps[b, :2]) / 2 for a, b in CHEEKS if min(kps[a, 2], kps[b, 2]) >= VISIBILITY_THRESHOLD
    ]
    if cheeks:
        return np.median(_pixels(frame, np.array(cheeks)), axis=0), "cheeks"
    return None


def matched_skin(
    frame: np.ndarray, keypoints: np.ndarray, skin: np.ndarray, n: int, face_expand: float, hand_expand: float
) -> np.ndarray:
    """Median RGB (3,) of the ``n`` pixels nearest in colour to ``skin`` inside a frame's hand boxes.

    The frame (H, W, 3) is a generated first frame, ``skin`` the reference's colour: the generator's own
    rendering of the hands, found though they may sit a few pixels off the keypoints (134, 3) or have
    drifted in colour. The boxes are the visible hands' (expanded ``hand_expand``) less the face box, else
    the face box.
    """
    h, w = frame.shape[:2]
    region = np.zeros((h, w), bool)
    hand_boxes = [b for b in (keypoint_box(keypoints, hand, h, w, hand_expand) for hand in HANDS) if b]
    face = keypoint_box(keypoints, FACE, h, w, face_expand)
    for box in hand_boxes or [face]:
        if box is not None:
            region[box[0] : box[1], box[2] : box[3]] = True
    if hand_boxes and face is not None:  # the face is skin too, but the hands' colour is sought
        region[face[0] : face[1], face[2] : face[3]] = False
    pixels = frame[region].astype(np.float64) if region.any() else frame.reshape(-1, 3).astype(np.float64)
    nearest = np.argsort(np.linalg.norm(pixels - skin, axis=-1), kind="stable")[: max(n, 1)]
    return np.median(pixels[nearest], axis=0)


def keypoint_box(
    keypoints: np.ndarray, index: range, height: int, width: int, expand: float
) -> tuple[int, int, int, int] | None:
    """Pixel box (y0, y1, x0, x1) of the visible keypoints ``index`` of (134, 3), expanded; None if none."""
    part = np.asarray(keypoints, dtype=np.float64)[list(index)]
    pts = part[part[:, 2] >= VISIBILITY_THRESHOLD, :2]
    if len(pts) == 0:
        return None
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) * expand / 2
    x0, y0 = np.floor((centre - half) * (width, height)).astype(int)
    x1, y1 = np.ceil((centre + half) * (width, height)).astype(int)
    return max(y0, 0), min(y1, height), max(x0, 0), min(x1, width)


def background_distance(
    frame: np.ndarray, keypoints: np.ndarray, skin: np.ndarray, face_expand: float, hand_expand: float
) -> float | None:
    """1 % quantile of the RGB distance to ``skin`` of a frame's pixels off its face and hand boxes.

    How close the colours that are not hands (background, clothes, hair) come to the skin colour; None
    when the boxes cover the frame. The hand boxes are generous (``hand_expand``) so that hands drawn a
    few pixels off their keypoints do not count as background.
    """
    h, w = frame.shape[:2]
    off = np.ones((h, w), bool)
    for part, expand in ((FACE, face_expand), (HANDS[0], hand_expand), (HANDS[1], hand_expand)):
        box = keypoint_box(keypoints, part, h, w, expand)
        if box is not None:
            off[box[0] : box[1], box[2] : box[3]] = False
    if not off.any():
        return None
    return float(np.quantile(np.linalg.norm(frame[off].astype(np.float64) - skin, axis=-1), 0.01))


def split_in_two(points: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Centroids (2, 2) of a 2-means clustering of ``points`` (N >= 2, 2), from its principal axis' ends."""
    centred = points - points.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    along = centred @ axis
    centres = points[[np.argmin(along), np.argmax(along)]].astype(np.float64)
    for _ in range(iterations):
        nearest = np.linalg.norm(points[:, None] - centres[None], axis=-1).argmin(axis=1)
        if nearest.min() == nearest.max():
            break
        centres = np.stack([points[nearest == k].mean(axis=0) for k in (0, 1)])
    return centres


@dataclasses.dataclass(frozen=True)
class HandBlobs:
    """The hand detector: skin-coloured blobs off the face box (settings: :class:`HandFollowAdapter`'s)."""

    colour_tol: float
    face_expand: float
    min_area: float
    max_area: float

    def mask(self, frame: np.ndarray, skin: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """Hand pixels (H, W) bool of a frame (H, W, 3): within ``colour_tol`` of ``skin``, off the face."""
        h, w = frame.shape[:2]
        mask = np.linalg.norm(frame.astype(np.float64) - skin, axis=-1) < self.colour_tol
        box = keypoint_box(keypoints, FACE, h, w, self.face_expand)
        if box is not None:
            y0, y1, x0, x1 = box
            mask[y0:y1, x0:x1] = False
        return mask

    def __call__(
        self, frame: np.ndarray, skin: np.ndarray, keypoints: np.ndarray, n_hands: int = 2
    ) -> np.ndarray:
        """Centroids (k <= 2, 2), normalised x, y, of the two largest blobs of ``min_area`` .. ``max_area``.

        With ``n_hands`` = 2 and one blob found (hands that touch), the blob's pixels split in two
        (:func:`split_in_two`).
        """
        h, w = frame.shape[:2]
        mask = self.mask(frame, skin, keypoints)
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        fits = (areas >= max(self.min_area * h * w, 1)) & (areas <= self.max_area * h * w)
        keep = [i + 1 for i in np.argsort(-areas, kind="stable") if fits[i]][:2]
        if len(keep) == 1 and n_hands == 2 and areas[keep[0] - 1] >= 2:
            rows_cols = split_in_two(np.argwhere(labels == keep[0]).astype(np.float64))
        else:
            rows_cols = np.array(ndimage.center_of_mass(mask, labels, keep), dtype=np.float64).reshape(-1, 2)
        return (rows_cols[:, ::-1] + 0.5) / (w, h)


def driving_hands(keypoints: np.ndarray) -> np.ndarray:
    """Mean normalised x, y (k <= 2, 2) of each hand of (134, 3) with a visible keypoint."""
    kps = np.asarray(keypoints, dtype=np.float64)
    centres = []
    for hand in HANDS:
        pts = kps[hand.start : hand.stop]
        pts = pts[pts[:, 2] >= VISIBILITY_THRESHOLD, :2]
        if len(pts):
            centres.append(pts.mean(axis=0))
    return np.array(centres, dtype=np.float64).reshape(-1, 2)


def match_costs(driving: np.ndarray, blobs: np.ndarray, miss_penalty: float) -> np.ndarray:
    """Cost (n,) of each driving hand (n <= 2, 2) given the blobs (k <= 2, 2) found.

    A hand's cost is the distance to its blob capped at ``miss_penalty``; ``miss_penalty`` with no blob.
    Two blobs: the cheaper of the two one-to-one assignments; one blob: every hand's is that blob (hands
    that touch make one blob).
    """
    if len(blobs) == 0:
        return np.full(len(driving), miss_penalty)
    d = np.minimum(np.linalg.norm(driving[:, None] - blobs[None], axis=-1), miss_penalty)  # (n, k)
    if len(blobs) == 1:
        return d[:, 0]
    if len(driving) == 1:
        return d.min(axis=1)
    straight, crossed = d[[0, 1], [0, 1]], d[[0, 1], [1, 0]]
    return straight if straight.sum() <= crossed.sum() else crossed


class HandFollowMetric(RunnerSyncedMetric):
    """Sums over videos of the generated and reference hand errors and detection rates (float64)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    error_sum: Tensor
    error_px_sum: Tensor
    detect_sum: Tensor
    reference_error_sum: Tensor
    reference_detect_sum: Tensor
    from_face: Tensor
    n_videos: Tensor

    NAMES = ("error_sum", "error_px_sum", "detect_sum", "reference_error_sum", "reference_detect_sum")

    def __init__(self) -> None:
        super().__init__()
        for name in self.NAMES:
            self.add_state(name, torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("from_face", "n_videos"):
            self.add_state(name, torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, values: dict[str, float], from_face: bool) -> None:
        """Add one video's ``hand_*`` values (:meth:`HandFollowAdapter.update`'s)."""
        self.error_sum += values["hand_error"]
        self.error_px_sum += values["hand_error_px"]
        self.detect_sum += values["hand_detect"]
        self.reference_error_sum += values["hand_error_reference"]
        self.reference_detect_sum += values["hand_detect_reference"]
        self.from_face += int(from_face)
        self.n_videos += 1

    def compute(self) -> dict[str, Tensor]:
        """Means over videos and the number of videos, keyed as the adapter's values."""
        n = int(self.n_videos)
        if n == 0:
            raise MetricInputError("hands: no video could be scored")
        return {
            "hand_error": self.error_sum / n,
            "hand_error_px": self.error_px_sum / n,
            "hand_detect": self.detect_sum / n,
            "hand_error_reference": self.reference_error_sum / n,
            "hand_detect_reference": self.reference_detect_sum / n,
            "hand_skin_from_face": self.from_face.double() / n,
            "hand_clips": self.n_videos.clone(),
        }


class HandFollowAdapter(MetricAdapter):
    """Runner adapter: skin-coloured hand blobs of the generated video vs the reference's (driving) hands.

    Needs the reference video's keypoints (``<stem>.npy`` / ``keypoints.npy`` next to it). Generated and
    reference must have the same frame count (``frame_policy="truncate"`` scores the common frames); their
    sizes may differ (keypoints are in fractions of the frame).
    """

    name = "hands"
    higher_is_better = False
    needs_reference = True
    variant = "mmgt"
    """A project definition (no published reference)."""
    value_higher_is_better: ClassVar[dict[str, bool | None]] = {
        "hand_error": False,
        "hand_error_px": False,
        "hand_detect": True,
        "hand_error_reference": None,
        "hand_detect_reference": None,
        "hand_skin_from_face": None,
        "hand_colour_tol": None,
        "hand_clips": None,
    }

    def __init__(
        self,
        colour_tol: float = 40.0,
        background_margin: float | None = 0.75,
        face_expand: float = 1.5,
        hand_expand: float = 3.0,
        min_area: float = 0.001,
        max_area: float = 0.03,
        miss_penalty: float = 0.25,
        hit_radius: float = 0.05,
        calibrate_on: str = "own",
        frame_policy: str = "error",
    ) -> None:
        if frame_policy not in ("error", "truncate"):
            raise ValueError(f"frame_policy must be error|truncate, got {frame_policy!r}")
        if calibrate_on not in ("own", "reference"):
            raise ValueError(f"hands: calibrate_on must be own|reference, got {calibrate_on!r}")
        if not 0 < hit_radius < miss_penalty:
            raise ValueError(f"hands: need 0 < hit_radius < miss_penalty, got {hit_radius}, {miss_penalty}")
        if not 0 <= min_area < max_area:
            raise ValueError(f"hands: need 0 <= min_area < max_area, got {min_area}, {max_area}")
        self.blobs = HandBlobs(float(colour_tol), float(face_expand), float(min_area), float(max_area))
        self.background_margin = None if background_margin is None else float(background_margin)
        self.hand_expand = float(hand_expand)
        self.miss_penalty, self.hit_radius = float(miss_penalty), float(hit_radius)
        self.frame_policy, self.calibrate_on = frame_policy, calibrate_on
        self.state = HandFollowMetric()

    def detector(self, first: np.ndarray, keypoints: np.ndarray, skin: np.ndarray) -> HandBlobs:
        """The detector for ``skin`` (3,), its tolerance calibrated on a first frame (H, W, 3).

        ``colour_tol``, at most ``background_margin`` x :func:`background_distance` of the frame with its
        keypoints (134, 3).
        """
        distance = None
        if self.background_margin is not None:
            distance = background_distance(first, keypoints, skin, self.blobs.face_expand, self.hand_expand)
        if distance is None:
            return self.blobs
        return dataclasses.replace(
            self.blobs, colour_tol=min(self.blobs.colour_tol, self.background_margin * distance)
        )

    def own_calibration(
        self, frames: np.ndarray, keypoints: np.ndarray, reference: tuple[np.ndarray, HandBlobs]
    ) -> tuple[np.ndarray, HandBlobs, np.ndarray]:
        """(skin colour, detector, costs) of a generated video (T, H, W, 3), keypoints (T, 134, 3).

        Three candidates: the reference's (skin colour, detector) and two calibrated on the video's first
        frame, its colour at the palm keypoints (:func:`skin_colour`: right when the hands sit on them) and
        that of its hand boxes' pixels nearest the reference's colour (:func:`matched_skin`: right when they
        are drawn a few pixels off or drifted in colour). The video gets the benefit of the doubt: the
        candidate with the lowest mean cost over its frames.
        """
        first, k0 = frames[0], keypoints[0]
        ref_skin, face_expand = reference[0], self.blobs.face_expand
        colours = [matched_skin(first, k0, ref_skin, 2 * len(PALM), face_expand, self.hand_expand)]
        at_palms = skin_colour(first, k0)
        colours += [at_palms[0]] if at_palms is not None else []
        candidates = [reference, *((skin, self.detector(first, k0, skin)) for skin in colours)]
        best: tuple[np.ndarray, HandBlobs, np.ndarray] | None = None
        for skin, blobs in candidates:
            cost = self.costs(blobs, skin, frames, keypoints)
            if best is None or cost.sum() < best[2].sum():
                best = (skin, blobs, cost)
        return best

    def costs(
        self, blobs: HandBlobs, skin: np.ndarray, frames: np.ndarray, keypoints: np.ndarray
    ) -> np.ndarray:
        """Costs of every driving hand of every frame: frames (T, H, W, 3), keypoints (T, 134, 3)."""
        out = []
        for frame, kps in zip(frames, keypoints, strict=True):
            driving = driving_hands(kps)
            if len(driving):
                out.append(match_costs(driving, blobs(frame, skin, kps, len(driving)), self.miss_penalty))
        return np.concatenate(out) if out else np.zeros(0)

    def _inputs(
        self, generated: VideoSample, reference: VideoSample | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(generated frames, reference frames, keypoints), cut to the common frames; raises on bad input."""
        if reference is None:
            raise VideoSkipped(generated.name, "hands: needs a reference video")
        if reference.keypoints is None:
            raise VideoSkipped(generated.name, reference.missing_keypoints("hands (reference)"))
        g, r, kps = generated.frames, reference.frames, np.asarray(reference.keypoints)
        if kps.ndim != 3 or kps.shape[1:] != (134, 3):
            raise MetricInputError(
                f"{reference.name}: reference keypoints must be (T, 134, 3), got {kps.shape}"
            )
        if self.frame_policy == "error" and not (len(g) == len(r) == len(kps)):
            raise MetricInputError(
                f"{generated.name}: {len(g)} generated, {len(r)} reference frames, {len(kps)} keypoint "
                "frames (frame_policy=truncate scores the common frames)"
            )
        n = min(len(g), len(r), len(kps))
        return g[:n], r[:n], kps[:n]

    def update(self, generated: VideoSample, reference: VideoSample | None) -> dict[str, float]:
        """Score one pair; per-video ``hand_*`` values."""
        g, r, kps = self._inputs(generated, reference)
        found = skin_colour(r[0], kps[0])
        if found is None:
            raise VideoSkipped(generated.name, "hands: no palm or cheek keypoint visible in the first frame")
        ref_skin, source = found
        ref_blobs = self.detector(r[0], kps[0], ref_skin)
        if self.calibrate_on == "own":
            _, blobs, gen_costs = self.own_calibration(g, kps, (ref_skin, ref_blobs))
        else:
            blobs, gen_costs = ref_blobs, self.costs(ref_blobs, ref_skin, g, kps)
        ref_costs = self.costs(ref_blobs, ref_skin, r, kps)
        if len(gen_costs) == 0:
            raise VideoSkipped(generated.name, "hands: no driving hand visible in any frame")
        values = {
            "hand_error": float(gen_costs.mean()),
            "hand_error_px": float(gen_costs.mean() * g.shape[2]),
            "hand_detect": float((gen_costs <= self.hit_radius).mean()),
            "hand_error_reference": float(ref_costs.mean()),
            "hand_detect_reference": float((ref_costs <= self.hit_radius).mean()),
        }
        self.state.update(values, source == "cheeks")
        return {**values, "hand_colour_tol": blobs.colour_tol}

    def compute(self) -> dict[str, float]:
        """Means over videos and the number of videos."""
        values = {k: float(v) for k, v in self.state.compute().items()}
        return {**values, "hand_clips": int(values["hand_clips"])}

    def protocol(self) -> dict:
        """The definition and its parameters."""
        return {
            "metric": self.name,
            "definition": "distance of the driving hands (mean of each hand's reference keypoints) to the "
            "two largest skin-coloured blobs outside the face box (one blob split in two when two hands are "
            "driven), cheaper assignment, capped at miss_penalty",
            "skin": "median RGB of the video's (calibrate_on own) or the reference's first frame at the "
            "driving pose's first visible palm keypoints (else its cheeks)",
            **dataclasses.asdict(self.blobs),
            "background_margin": self.background_margin,
            "hand_expand": self.hand_expand,
            "calibrate_on": self.calibrate_on,
            "tolerance": "per video: min(colour_tol, background_margin x the 1 % quantile of the distance to "
            "the skin colour of the same first frame off its face and hand boxes): hand_colour_tol",
            "miss_penalty": self.miss_penalty,
            "hit_radius": self.hit_radius,
            "frame_policy": self.frame_policy,
            "aggregation": "per video: mean over the driving hands of all frames; then means over videos",
        }

    def metric_states(self) -> list[torchmetrics.Metric]:
        """The accumulator."""
        return [self.state]
