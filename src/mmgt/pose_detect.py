"""mediapipe detectors -> COCO-WholeBody-134 stored keypoints (0.10.21, bundled models, offline).

Holistic gives the whole body; FaceMesh the face block alone (:class:`FaceLandmarkDetector`, faces without a
body, e.g. for lip metrics).

Layout and conventions: :mod:`mmgt.schema` (x, y in [0, 1] of the frame, confidence in [0, 1]).

Mapping (mediapipe -> stored 134 layout)
----------------------------------------
* **Body 0-17** (OpenPose-18 order) from the 33 pose landmarks: nose 0, shoulders 12/11, elbows 14/13,
  wrists 16/15, hips 24/23, knees 26/25, ankles 28/27, eye centres 5/2, ears 8/7 (right/left).
  mediapipe's pose names sides from the subject's point of view, as OpenPose does. Confidence =
  mediapipe's ``visibility``. **Neck** = mean of the shoulders, confidence = min of theirs.
* **Feet 18-23**: big toe <- ``foot_index`` (31 left, 32 right), heel <- heel (29, 30). mediapipe has
  no small-toe landmark, so the small toes always have confidence 0 (x, y = 0).
* **Face 24-91**: iBUG-68 points picked from the 468/478-point face mesh by :data:`MP_FACE_TO_IBUG68`,
  confidence 1 when holistic returned a face mesh (mesh points carry no per-point score), else 0.
* **Hands 92-112 / 113-133**: mediapipe's 21 hand landmarks are already in our order (wrist, then
  thumb, index, middle, ring, pinky from base to tip). Holistic's ``left_hand_landmarks`` is the hand
  attached to the pose's *left* wrist, i.e. the subject's left hand (unlike ``solutions.hands``, which
  assumes a mirrored selfie image); verified on the half-body samples, where each hand's wrist lies
  next to the pose wrist of the same side. Confidence 1 when the hand is present, else 0.
* Everything mediapipe did not return has confidence 0 and x = y = 0.

Frame contract: mediapipe gives x, y normalised by the image width and height; pose landmarks are
extrapolated outside the image for out-of-frame joints (e.g. hips under a half-body crop). Stored
keypoints keep x, y in [0, 1]: every point is clipped to the frame, and points lying more than
``OUT_OF_FRAME_MARGIN`` (a fraction of the longer image side) outside it also get confidence 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.schema import (
    BODY_INDEX,
    FACE,
    FEET,
    LEFT_HAND,
    NUM_KEYPOINTS,
    RIGHT_HAND,
    VISIBILITY_THRESHOLD,
)

OUT_OF_FRAME_MARGIN: float = 0.05
"""Points further than this (fraction of the longer image side) outside the frame get confidence 0."""

# mediapipe pose landmark index per body keypoint (OpenPose-18 order); None = computed (neck).
POSE_TO_BODY: tuple[int | None, ...] = (
    0,  # nose
    None,  # neck = mean of the shoulders
    12, 14, 16,  # right shoulder, elbow, wrist
    11, 13, 15,  # left shoulder, elbow, wrist
    24, 26, 28,  # right hip, knee, ankle
    23, 25, 27,  # left hip, knee, ankle
    5, 2,  # right eye, left eye (centres)
    8, 7,  # right ear, left ear
)  # fmt: skip
POSE_TO_FEET: tuple[int | None, ...] = (31, None, 29, 32, None, 30)
"""mediapipe pose index per feet keypoint (``FEET_NAMES`` order); None = small toe, not in mediapipe."""

# 68 face-mesh indices giving the iBUG-68 points (0-16 jaw from the subject's right ear to the left,
# 17-26 brows, 27-35 nose, 36-47 eyes, 48-59 outer lips, 60-67 inner lips). Built from the published
# correspondence of PeizhiYan/Mediapipe_2_Dlib_Landmarks (mediapipe2dlib, 2024, which averages two mesh
# points for iBUG 3, 4, 12, 27, 28) and mediapipe's canonical_face_model_uv_visualization.png; here one
# mesh point per iBUG point, left/right symmetric (mesh mirror pairs 127/356, 234/454, 93/323, 132/361,
# 58/288, 172/397, 150/379, 176/400, 70/300, 33/263, 61/291, 78/308, ...). The jaw takes 9 of the 12
# face-oval points from ear to chin (127 234 93 132 58 172 136 150 149 176 148 152), skipping 136, 149
# and 148: on the sample faces this gives the most even spacing (arc-length steps 0.09-0.18).
MP_FACE_TO_IBUG68: tuple[int, ...] = (
    # jaw 0-16 (0 = subject's right, i.e. image left for a frontal face; 8 = chin)
    127, 234, 93, 132, 58, 172, 150, 176, 152, 400, 379, 397, 288, 361, 323, 454, 356,
    # right brow 17-21, left brow 22-26 (outer -> inner, inner -> outer)
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # nose bridge 27-30 (nasion -> tip), lower nose 31-35 (right ala -> left ala)
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    # right eye 36-41 (outer corner, upper lid x2, inner corner, lower lid x2), left eye 42-47
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    # outer lips 48-59 (right corner, upper lip, left corner 54, lower lip back)
    61, 39, 37, 0, 267, 269, 291, 321, 314, 17, 84, 91,
    # inner lips 60-67 (right corner, upper 61-63, left corner 64, lower 65-67)
    78, 82, 13, 312, 308, 317, 14, 87,
)  # fmt: skip
assert len(MP_FACE_TO_IBUG68) == 68

_POSE_MODEL_FILES = {
    0: "pose_landmark_lite.tflite",
    1: "pose_landmark_full.tflite",
    2: "pose_landmark_heavy.tflite",
}


class NoPersonError(ValueError):
    """Raised when an image holds no person mediapipe can find (the message names the image)."""


# --------------------------------------------------------------------------- mapping
def _landmarks(lms: Any) -> np.ndarray | None:
    """A mediapipe NormalizedLandmarkList -> (N, 3) float64 [x, y, visibility] (None if absent)."""
    if lms is None:
        return None
    return np.array([(p.x, p.y, p.visibility) for p in lms.landmark], dtype=np.float64)


def clip_to_frame(
    kps: np.ndarray, margin_x: float = OUT_OF_FRAME_MARGIN, margin_y: float | None = None
) -> np.ndarray:
    """Enforce the stored-keypoint frame contract on (..., 134, 3) in place-safe fashion (returns a copy).

    Points further than ``margin_x`` / ``margin_y`` (frame fractions) outside [0, 1], or non-finite,
    get confidence 0; then x, y are clipped to [0, 1] and confidence to [0, 1]. Non-finite x, y
    become 0.
    """
    margin_y = margin_x if margin_y is None else margin_y
    out = np.array(kps, dtype=np.float32, copy=True)
    x, y = out[..., 0], out[..., 1]
    finite = np.isfinite(out).all(axis=-1)
    outside = (x < -margin_x) | (x > 1 + margin_x) | (y < -margin_y) | (y > 1 + margin_y)
    out[~finite] = 0.0
    out[..., 2] = np.where(outside | ~finite, 0.0, np.clip(out[..., 2], 0.0, 1.0))
    out[..., :2] = np.clip(out[..., :2], 0.0, 1.0)
    return out


def holistic_to_coco134(results: Any, width: int, height: int) -> np.ndarray:
    """Mediapipe Holistic results of one (height x width) frame -> (134, 3) float32 stored keypoints.

    ``results`` needs the attributes ``pose_landmarks``, ``face_landmarks``, ``left_hand_landmarks``
    and ``right_hand_landmarks`` (each None or a landmark list). ``width``/``height`` set the
    out-of-frame margin (:data:`OUT_OF_FRAME_MARGIN` of the longer side, in each axis' units).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"holistic_to_coco134: invalid frame size {width}x{height}")
    kps = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
    pose = _landmarks(results.pose_landmarks)
    if pose is not None:
        for i, j in enumerate(POSE_TO_BODY):
            if j is not None:
                kps[i] = pose[j]
        rs, ls = pose[12], pose[11]
        kps[BODY_INDEX["neck"], :2] = (rs[:2] + ls[:2]) / 2.0
        kps[BODY_INDEX["neck"], 2] = min(rs[2], ls[2])
        for i, j in zip(FEET, POSE_TO_FEET, strict=True):
            if j is not None:
                kps[i] = pose[j]
    face = _landmarks(results.face_landmarks)
    if face is not None:
        kps[FACE.start : FACE.stop, :2] = face[list(MP_FACE_TO_IBUG68), :2]
        kps[FACE.start : FACE.stop, 2] = 1.0
    for region, attr in ((LEFT_HAND, "left_hand_landmarks"), (RIGHT_HAND, "right_hand_landmarks")):
        hand = _landmarks(getattr(results, attr))
        if hand is not None:
            kps[region.start : region.stop, :2] = hand[:21, :2]
            kps[region.start : region.stop, 2] = 1.0
    side = float(max(width, height))
    return clip_to_frame(kps, OUT_OF_FRAME_MARGIN * side / width, OUT_OF_FRAME_MARGIN * side / height)


# --------------------------------------------------------------------------- detector
def _check_pose_model(model_complexity: int) -> None:
    """Fail early (offline) when the pose model for ``model_complexity`` is not inside the wheel."""
    import mediapipe as mp

    if model_complexity not in _POSE_MODEL_FILES:
        raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity}")
    path = Path(mp.__file__).parent / "modules" / "pose_landmark" / _POSE_MODEL_FILES[model_complexity]
    if not path.is_file():
        raise FileNotFoundError(
            f"mediapipe pose model for model_complexity={model_complexity} not found at {path}: mediapipe "
            f"0.10.21 bundles only model_complexity=1 (pose_landmark_full) and would try to download the "
            f"others; use model_complexity=1"
        )


def _as_rgb_frame(frame: Any, source: str = "frame") -> np.ndarray:
    """Validate/convert an image to a contiguous (H, W, 3) uint8 RGB array (gray and RGBA accepted)."""
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"{source}: expected an (H, W, 3) RGB image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"{source}: expected uint8 pixels, got {arr.dtype}")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"{source}: image too small ({arr.shape[1]}x{arr.shape[0]})")
    return np.ascontiguousarray(arr[..., :3])


class HolisticDetector:
    """One mediapipe Holistic graph: frames (H, W, 3) uint8 RGB -> (134, 3) stored keypoints.

    Build one per worker process (the graph is created in ``__init__``; pickling the detector sends
    only its settings and the receiving process builds its own graph). In video mode
    (``static_image_mode=False``) mediapipe tracks across calls; :meth:`detect_frames` resets the
    tracker first, so each call is one independent clip. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(
        self,
        static_image_mode: bool = False,
        model_complexity: int = 1,
        refine_face_landmarks: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        self.settings: dict[str, Any] = {
            "static_image_mode": bool(static_image_mode),
            "model_complexity": int(model_complexity),
            "refine_face_landmarks": bool(refine_face_landmarks),
            "min_detection_confidence": float(min_detection_confidence),
            "min_tracking_confidence": float(min_tracking_confidence),
        }
        _check_pose_model(self.settings["model_complexity"])
        self._graph: Any = None
        self._build()

    def _build(self) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")  # quieten mediapipe's C++ INFO/WARNING lines
        import mediapipe as mp

        self._graph = mp.solutions.holistic.Holistic(
            static_image_mode=self.settings["static_image_mode"],
            model_complexity=self.settings["model_complexity"],
            smooth_landmarks=True,
            enable_segmentation=False,
            refine_face_landmarks=self.settings["refine_face_landmarks"],
            min_detection_confidence=self.settings["min_detection_confidence"],
            min_tracking_confidence=self.settings["min_tracking_confidence"],
        )

    def process(self, frame: np.ndarray) -> Any:
        """Raw mediapipe results for one frame (H, W, 3) uint8 RGB."""
        if self._graph is None:
            raise RuntimeError("HolisticDetector is closed")
        return self._graph.process(_as_rgb_frame(frame))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (134, 3) float32; all-zero confidences when no person is found."""
        rgb = _as_rgb_frame(frame)
        return holistic_to_coco134(self.process(rgb), width=rgb.shape[1], height=rgb.shape[0])

    def detect_frames(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Consecutive frames (T, H, W, 3) or an iterable of (H, W, 3) -> (T, 134, 3) float32.

        In video mode the tracker is reset first, so the result does not depend on earlier calls.
        """
        if not self.settings["static_image_mode"]:
            self.reset()
        out = [self(f) for f in frames]
        if not out:
            return np.zeros((0, NUM_KEYPOINTS, 3), dtype=np.float32)
        return np.stack(out)

    def reset(self) -> None:
        """Forget the tracking state: restart the graph's run.

        Its calculators reopen (~0.08 s, a third less than building a new graph). Results after a reset
        equal those of a new detector.
        """
        if self._graph is None:
            raise RuntimeError("HolisticDetector is closed")
        self._graph.reset()

    def close(self) -> None:
        """Release the mediapipe graph (the detector can no longer be used)."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> HolisticDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"settings": dict(self.settings)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state["settings"])


def face_mesh_to_coco134(face_landmarks: Any, width: int, height: int) -> np.ndarray:
    """One face of mediapipe FaceMesh (a NormalizedLandmarkList or None) -> (134, 3) float32 keypoints.

    Only the face block 24-91 is filled (:data:`MP_FACE_TO_IBUG68`, confidence 1), everything else is 0.
    """
    kps = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
    face = _landmarks(face_landmarks)
    if face is not None:
        kps[FACE.start : FACE.stop, :2] = face[list(MP_FACE_TO_IBUG68), :2]
        kps[FACE.start : FACE.stop, 2] = 1.0
    side = float(max(width, height))
    return clip_to_frame(kps, OUT_OF_FRAME_MARGIN * side / width, OUT_OF_FRAME_MARGIN * side / height)


class FaceLandmarkDetector:
    """mediapipe FaceMesh on whole frames: (T, H, W, 3) uint8 RGB -> (T, 134, 3) face-block keypoints.

    0.10.21, bundled BlazeFace + face-landmark models, offline; only the face block (iBUG-68) is filled.

    Unlike :class:`HolisticDetector` it needs no body: the face detector finds the face in head-and-shoulders
    crops and small frames (64 x 64 toy and generated videos). The face points are the same mesh points
    Holistic's face gives (:data:`MP_FACE_TO_IBUG68`), so lips measured here compare with prep's keypoints.
    Frames without a face have confidence 0. In video mode the tracker is reset for every
    :meth:`detect_frames` call. Use as a context manager or call :meth:`close`.
    """

    def __init__(
        self,
        static_image_mode: bool = False,
        refine_landmarks: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        self.settings: dict[str, Any] = {
            "static_image_mode": bool(static_image_mode),
            "refine_landmarks": bool(refine_landmarks),
            "min_detection_confidence": float(min_detection_confidence),
            "min_tracking_confidence": float(min_tracking_confidence),
        }
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        self._graph: Any = mp.solutions.face_mesh.FaceMesh(max_num_faces=1, **self.settings)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (134, 3) float32; all-zero confidences when no face is found."""
        if self._graph is None:
            raise RuntimeError("FaceLandmarkDetector is closed")
        rgb = _as_rgb_frame(frame)
        faces = self._graph.process(rgb).multi_face_landmarks
        return face_mesh_to_coco134(faces[0] if faces else None, width=rgb.shape[1], height=rgb.shape[0])

    def detect_frames(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """Consecutive frames -> (T, 134, 3) float32 (the tracker starts afresh)."""
        if self._graph is None:
            raise RuntimeError("FaceLandmarkDetector is closed")
        if not self.settings["static_image_mode"]:
            self._graph.reset()
        out = [self(f) for f in frames]
        return np.stack(out) if out else np.zeros((0, NUM_KEYPOINTS, 3), dtype=np.float32)

    def close(self) -> None:
        """Release the mediapipe graph (the detector can no longer be used)."""
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def __enter__(self) -> FaceLandmarkDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- gaps
def interpolate_gaps(kps: np.ndarray, max_gap: int, threshold: float = VISIBILITY_THRESHOLD) -> np.ndarray:
    """Fill short detection dropouts of a (T, 134, 3) track; returns a new float32 array.

    Per keypoint, a run of at most ``max_gap`` consecutive frames with confidence < ``threshold``
    that has a detected frame (confidence >= ``threshold``) on both sides gets x, y linearly
    interpolated between those two frames and confidence = min of the two neighbours' confidences
    (the fill is no more certain than its weakest anchor). Longer runs, and runs touching the start
    or end of the track, are left unchanged (undetected points stay at confidence 0).
    """
    kps = np.asarray(kps)
    if kps.ndim != 3 or kps.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"interpolate_gaps: expected (T, {NUM_KEYPOINTS}, 3), got {kps.shape}")
    out = kps.astype(np.float32, copy=True)
    T = out.shape[0]
    if max_gap <= 0 or T < 3:
        return out
    invalid = out[..., 2] < threshold  # (T, K)
    for j in np.flatnonzero(invalid.any(axis=0) & ~invalid.all(axis=0)):
        edges = np.diff(np.concatenate(([0], invalid[:, j].astype(np.int8), [0])))
        for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            n = e - s
            if s == 0 or e == T or n > max_gap:
                continue
            w = (np.arange(1, n + 1, dtype=np.float32) / (n + 1))[:, None]
            out[s:e, j, :2] = (1.0 - w) * out[s - 1, j, :2] + w * out[e, j, :2]
            out[s:e, j, 2] = min(out[s - 1, j, 2], out[e, j, 2])
    return out


# --------------------------------------------------------------------------- single images
def _read_image(path: Path) -> np.ndarray:
    import cv2

    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: cannot decode the image (not an image file or corrupt)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def keypoints_from_image(image: str | Path | np.ndarray, max_side: int | None = None) -> np.ndarray:
    """Keypoints (134, 3) float32 of the person in one image (a path or an (H, W, 3) uint8 RGB array).

    Runs Holistic in static-image mode. ``max_side`` downscales larger images first (faster; the
    keypoints are frame-relative so they do not change scale). Raises :class:`NoPersonError` naming
    the image when mediapipe finds no person.
    """
    import cv2

    if isinstance(image, (str, Path)):
        source = str(image)
        rgb = _read_image(Path(image))
    else:
        source = "<array>"
        rgb = _as_rgb_frame(image, source)
    h, w = rgb.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        s = max_side / max(h, w)
        rgb = cv2.resize(rgb, (max(2, round(w * s)), max(2, round(h * s))), interpolation=cv2.INTER_AREA)
    with HolisticDetector(static_image_mode=True) as det:
        results = det.process(rgb)
    if results.pose_landmarks is None:
        raise NoPersonError(f"{source}: no person found by mediapipe holistic")
    return holistic_to_coco134(results, width=rgb.shape[1], height=rgb.shape[0])
