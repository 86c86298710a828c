"""Offline face detection, tracking and cropping for Sync-C/D (syncnet_python ``run_pipeline.py``).

Steps (metrics-reference.md §4.1; reference defaults in brackets; all in :class:`FaceTrackConfig`):

1. detection on every frame: mediapipe 0.10.21 ``mp.solutions.face_detection`` (bundled model, the
   default) or S3FD when its weights (``sfd_face.pth``) are given (``conf_th`` [0.9],
   ``facedet_scale`` [0.25], NMS IoU 0.1);
2. scene cuts (HSV content difference after PySceneDetect 0.5's ``ContentDetector``; off with
   ``scene_threshold=None``); only scenes with >= ``min_track`` frames are tracked;
3. ``track_shot``: greedy IoU linking (> ``iou_threshold`` [0.5]) across gaps <= ``num_failed_det``
   [25] frames, tracks longer than ``min_track`` [100] frames, gaps filled linearly, mean box side
   > ``min_face_size`` [100 px];
4. ``crop_video``: half-size ``s = max(w, h) / 2`` and centre, each median-filtered (kernel
   ``smooth_kernel`` [13], zero-padded as ``scipy.signal.medfilt``), frame padded with ``pad_value``
   [110], crop rows ``[y - s, y + s (1 + 2 cs)]`` and columns ``[x - s (1 + cs), x + s (1 + cs)]``
   with ``cs = crop_scale`` [0.40], ``cv2.resize`` (bilinear) to ``crop_size`` [224].

Differences from the reference, by design: frames stay in memory (no ffmpeg re-encode, JPEG or XVID
round trip), and mediapipe's boxes are not S3FD's boxes (the crop geometry follows the box), so
Sync-C/D from the two detectors are not interchangeable: always score ground truth with the same
settings (they are reported in the protocol).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal
from scipy.interpolate import interp1d
from torch import Tensor, nn

S3FD_URL: str = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth"
S3FD_FILE: str = "sfd_face.pth"


@dataclass(frozen=True)
class FaceTrackConfig:
    """Face detection / tracking / crop settings; :meth:`to_dict` goes into every result's protocol."""

    detector: Literal["mediapipe", "s3fd"] = "mediapipe"
    model_selection: int = 1
    """mediapipe model: 0 = short range (faces within ~2 m), 1 = full range (~5 m, small faces)."""
    min_detection_confidence: float = 0.5
    """mediapipe score threshold."""
    s3fd_weights: str | None = None
    """Path of ``sfd_face.pth`` (needed for ``detector='s3fd'``)."""
    s3fd_conf_th: float = 0.9
    facedet_scale: float = 0.25
    """S3FD input downscale (reference 0.25); mediapipe resizes internally and ignores it."""
    iou_threshold: float = 0.5
    num_failed_det: int = 25
    min_track: int = 100
    """A track needs MORE than this many frames (reference: 100 = 4 s; lower it for short clips)."""
    min_face_size: float = 100.0
    """Mean box width or height (pixels) must exceed this (reference: 100; lower it for small faces)."""
    crop_scale: float = 0.40
    smooth_kernel: int = 13
    crop_size: int = 224
    pad_value: int = 110
    scene_threshold: float | None = 30.0
    """Mean HSV difference between consecutive frames that starts a new scene; None = one scene."""
    min_scene_len: int = 15

    def __post_init__(self) -> None:
        if self.detector not in ("mediapipe", "s3fd"):
            raise ValueError(f"detector must be 'mediapipe' or 's3fd', got {self.detector!r}")
        if self.model_selection not in (0, 1):
            raise ValueError(f"model_selection must be 0 or 1, got {self.model_selection}")
        if self.smooth_kernel < 1 or self.smooth_kernel % 2 == 0:
            raise ValueError(f"smooth_kernel must be a positive odd integer, got {self.smooth_kernel}")
        if not 0 < self.facedet_scale <= 4:
            raise ValueError(f"facedet_scale must be in (0, 4], got {self.facedet_scale}")
        if self.min_track < 0 or self.num_failed_det < 0:
            raise ValueError("min_track and num_failed_det must be >= 0")

    @classmethod
    def from_any(cls, cfg: FaceTrackConfig | dict[str, Any] | None) -> FaceTrackConfig:
        """A config from itself, a (Hydra) mapping of field values, or None (defaults)."""
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        values = dict(cfg)
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown face-track settings {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (for protocol records)."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- detectors
class FaceDetector(Protocol):
    """Per-frame face detector: (H, W, 3) uint8 RGB -> (K, 5) float boxes x1, y1, x2, y2 (pixels), score."""

    def __call__(self, frame_rgb: np.ndarray) -> np.ndarray:
        """Face boxes (K, 5) float [x1, y1, x2, y2, score] in pixels of one (H, W, 3) uint8 RGB frame."""


class MediapipeFaceDetector:
    """mediapipe 0.10.21 ``solutions.face_detection`` (BlazeFace; model bundled in the wheel; offline)."""

    def __init__(self, model_selection: int = 1, min_detection_confidence: float = 0.5) -> None:
        import mediapipe as mp

        self._fd = mp.solutions.face_detection.FaceDetection(
            model_selection=model_selection, min_detection_confidence=min_detection_confidence
        )

    def __call__(self, frame_rgb: np.ndarray) -> np.ndarray:
        """BlazeFace boxes (K, 5) [x1, y1, x2, y2, score] in pixels of one (H, W, 3) uint8 RGB frame."""
        h, w = frame_rgb.shape[:2]
        result = self._fd.process(np.ascontiguousarray(frame_rgb))
        boxes = []
        for det in result.detections or ():
            b = det.location_data.relative_bounding_box
            x1, y1 = b.xmin * w, b.ymin * h
            boxes.append((x1, y1, x1 + b.width * w, y1 + b.height * h, float(det.score[0])))
        return np.asarray(boxes, dtype=np.float64).reshape(-1, 5)

    def close(self) -> None:
        """Release the mediapipe graph."""
        self._fd.close()


class _L2Norm(nn.Module):
    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.weight[None, :, None, None] * (x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))


class S3FDNet(nn.Module):
    """S3FD (syncnet_python ``detectors/s3fd/nets.py``) with the original module names (``sfd_face.pth``).

    (1, 3, H, W) RGB minus (123, 117, 104) -> loc (P, 4), face scores (P,), priors (P, 4) cx, cy, w, h.
    """

    MIN_SIZES = (16, 32, 64, 128, 256, 512)
    STEPS = (4, 8, 16, 32, 64, 128)

    def __init__(self) -> None:
        super().__init__()

        def conv(cin: int, cout: int, *a: Any, **kw: Any) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, *a, **kw), nn.ReLU(inplace=True)]

        layers: list[nn.Module] = [
            *conv(3, 64, 3, 1, padding=1), *conv(64, 64, 3, 1, padding=1), nn.MaxPool2d(2, 2),
            *conv(64, 128, 3, 1, padding=1), *conv(128, 128, 3, 1, padding=1), nn.MaxPool2d(2, 2),
            *conv(128, 256, 3, 1, padding=1), *conv(256, 256, 3, 1, padding=1),
            *conv(256, 256, 3, 1, padding=1), nn.MaxPool2d(2, 2, ceil_mode=True),
            *conv(256, 512, 3, 1, padding=1), *conv(512, 512, 3, 1, padding=1),
            *conv(512, 512, 3, 1, padding=1), nn.MaxPool2d(2, 2),
            *conv(512, 512, 3, 1, padding=1), *conv(512, 512, 3, 1, padding=1),
            *conv(512, 512, 3, 1, padding=1), nn.MaxPool2d(2, 2),
            *conv(512, 1024, 3, 1, padding=6, dilation=6), *conv(1024, 1024, 1, 1),
        ]  # fmt: skip
        self.vgg = nn.ModuleList(layers)
        self.L2Norm3_3 = _L2Norm(256, 10)
        self.L2Norm4_3 = _L2Norm(512, 8)
        self.L2Norm5_3 = _L2Norm(512, 5)
        self.extras = nn.ModuleList(
            [
                nn.Conv2d(1024, 256, 1, 1),
                nn.Conv2d(256, 512, 3, 2, padding=1),
                nn.Conv2d(512, 128, 1, 1),
                nn.Conv2d(128, 256, 3, 2, padding=1),
            ]
        )
        chans = (256, 512, 512, 1024, 512, 256)
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, 1, padding=1) for c in chans])
        self.conf = nn.ModuleList(
            [nn.Conv2d(c, 4 if i == 0 else 2, 3, 1, padding=1) for i, c in enumerate(chans)]
        )
        self.eval()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Raw heads of (B, 3, H, W) images: box offsets (N, 4), face scores (N,), priors (N, 4)."""
        size = x.shape[2:]
        sources = []
        for k in range(16):
            x = self.vgg[k](x)
        sources.append(self.L2Norm3_3(x))
        for k in range(16, 23):
            x = self.vgg[k](x)
        sources.append(self.L2Norm4_3(x))
        for k in range(23, 30):
            x = self.vgg[k](x)
        sources.append(self.L2Norm5_3(x))
        for k in range(30, len(self.vgg)):
            x = self.vgg[k](x)
        sources.append(x)
        for k, layer in enumerate(self.extras):
            x = F.relu(layer(x), inplace=True)
            if k % 2 == 1:
                sources.append(x)
        locs, confs, priors = [], [], []
        for i, src in enumerate(sources):
            conf = self.conf[i](src)
            if i == 0:  # max-out background label on the first head
                conf = torch.cat([conf[:, 0:3].max(1, keepdim=True).values, conf[:, 3:]], 1)
            locs.append(self.loc[i](src).permute(0, 2, 3, 1).reshape(-1, 4))
            confs.append(conf.permute(0, 2, 3, 1).reshape(-1, 2))
            priors.append(self._priors(size, src.shape[2], src.shape[3], i))
        scores = torch.softmax(torch.cat(confs), dim=-1)[:, 1]
        return torch.cat(locs), scores, torch.cat(priors)

    def _priors(self, size: Any, fh: int, fw: int, k: int) -> Tensor:
        imh, imw = int(size[0]), int(size[1])
        i, j = torch.meshgrid(torch.arange(fh), torch.arange(fw), indexing="ij")
        cx = (j.reshape(-1).double() + 0.5) / (imw / self.STEPS[k])
        cy = (i.reshape(-1).double() + 0.5) / (imh / self.STEPS[k])
        wh = torch.tensor([self.MIN_SIZES[k] / imw, self.MIN_SIZES[k] / imh], dtype=torch.float64)
        return torch.cat([cx[:, None], cy[:, None], wh.expand(len(cx), 2)], 1).float()


def _nms_numpy(dets: np.ndarray, thresh: float) -> np.ndarray:
    """Greedy NMS (py-faster-rcnn ``nms_``, no +1 in areas): indices kept, by descending score."""
    x1, y1, x2, y2, scores = dets.T
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[order[1:]]) - np.maximum(x1[i], x1[order[1:]]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[order[1:]]) - np.maximum(y1[i], y1[order[1:]]))
        inter = w * h
        ovr = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return np.asarray(keep, dtype=np.intp)


class S3FDDetector:
    """S3FD as ``S3FD.detect_faces(image, conf_th, scales=[facedet_scale])`` of syncnet_python.

    Post-processing as ``Detect``: scores > 0.05, top 5000, NMS 0.3, top 750; then score > ``conf_th`` and
    NMS 0.1 on full-resolution boxes.
    """

    MEAN_RGB = (123.0, 117.0, 104.0)

    def __init__(
        self,
        weights: str | Path,
        conf_th: float = 0.9,
        scale: float = 0.25,
        device: str | torch.device = "cpu",
    ) -> None:
        p = Path(weights)
        if not p.is_file():
            raise FileNotFoundError(
                f"{p}: S3FD weights not found. Download {S3FD_FILE} from {S3FD_URL} (no licence stated: not "
                "redistributed) and pass its path as s3fd_weights, or use detector=mediapipe."
            )
        state = torch.load(p, map_location="cpu", weights_only=True)
        self.net = S3FDNet()
        try:
            self.net.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{p}: not an S3FD state dict: {err}") from err
        self.net.to(device).eval()
        self.device = device
        self.conf_th = conf_th
        self.scale = scale

    @torch.inference_mode()
    def __call__(self, frame_rgb: np.ndarray) -> np.ndarray:
        """S3FD boxes (K, 5) [x1, y1, x2, y2, score] in pixels of one (H, W, 3) uint8 RGB frame, after NMS."""
        from torchvision.ops import nms

        h, w = frame_rgb.shape[:2]
        img = cv2.resize(
            frame_rgb, dsize=(0, 0), fx=self.scale, fy=self.scale, interpolation=cv2.INTER_LINEAR
        )
        x = torch.from_numpy(img.astype(np.float32) - np.float32(self.MEAN_RGB)).permute(2, 0, 1)[None]
        loc, scores, priors = self.net(x.to(self.device))
        loc, scores, priors = loc.cpu(), scores.cpu(), priors.cpu()
        var0, var1 = 0.1, 0.2
        boxes = torch.cat(
            [priors[:, :2] + loc[:, :2] * var0 * priors[:, 2:], priors[:, 2:] * torch.exp(loc[:, 2:] * var1)],
            1,
        )
        boxes[:, :2] -= boxes[:, 2:] / 2
        boxes[:, 2:] += boxes[:, :2]
        mask = scores > 0.05
        boxes, scores = boxes[mask], scores[mask]
        top = scores.argsort(descending=True)[:5000]
        boxes, scores = boxes[top], scores[top]
        keep = nms(boxes, scores, 0.3)[:750]
        boxes, scores = boxes[keep], scores[keep]
        sel = scores > self.conf_th
        dets = torch.cat([boxes[sel] * torch.tensor([w, h, w, h]), scores[sel, None]], 1).double().numpy()
        if len(dets) == 0:
            return np.zeros((0, 5))
        return dets[_nms_numpy(dets, 0.1)]


def make_detector(cfg: FaceTrackConfig, device: str | torch.device = "cpu") -> FaceDetector:
    """The detector ``cfg`` selects; ``s3fd`` without ``s3fd_weights`` is a clear error."""
    if cfg.detector == "mediapipe":
        return MediapipeFaceDetector(cfg.model_selection, cfg.min_detection_confidence)
    if not cfg.s3fd_weights:
        raise ValueError(
            f"detector=s3fd needs s3fd_weights: download {S3FD_FILE} from {S3FD_URL} and set its path "
            "(or use detector=mediapipe)"
        )
    return S3FDDetector(cfg.s3fd_weights, cfg.s3fd_conf_th, cfg.facedet_scale, device)


# --------------------------------------------------------------------------- scenes and tracks
_SCENE_DOWNSCALE = ((3200, 12), (2100, 8), (1700, 6), (1200, 5), (900, 4), (600, 3), (400, 2))
"""PySceneDetect 0.5 ``DEFAULT_DOWNSCALE_FACTORS``: (min frame width, subsampling step)."""


def scene_cuts(
    frames: np.ndarray, threshold: float | None = 30.0, min_scene_len: int = 15
) -> list[tuple[int, int]]:
    """Scenes as [start, end) frame ranges, after PySceneDetect's ``ContentDetector``.

    A cut starts at frame t when the mean absolute HSV difference to frame t-1 (averaged over H, S, V) is
    >= ``threshold`` and at least ``min_scene_len`` frames passed since the previous cut. Frames are
    subsampled by PySceneDetect 0.5's automatic downscale factor for their width. No cut: one scene.
    """
    n = len(frames)
    if threshold is None or n < 2:
        return [(0, n)]
    width = frames.shape[2]
    factor = next((f for w, f in _SCENE_DOWNSCALE if width >= w), 1)
    cuts: list[int] = []
    last_cut: int | None = None
    prev: np.ndarray | None = None
    for t in range(n):
        hsv = cv2.cvtColor(
            np.ascontiguousarray(frames[t, ::factor, ::factor, ::-1]), cv2.COLOR_BGR2HSV
        ).astype(np.int32)
        if prev is not None:
            delta = np.abs(hsv - prev).reshape(-1, 3).mean(0).mean()
            if delta >= threshold and (last_cut is None or t - last_cut >= min_scene_len):
                cuts.append(t)
                last_cut = t
        prev = hsv
    bounds = [0, *cuts, n]
    return list(pairwise(bounds))


@dataclass
class FaceTrack:
    """One face track: contiguous absolute frame indices and their (interpolated) boxes."""

    frames: np.ndarray
    """(L,) int, consecutive frame indices into the video."""
    boxes: np.ndarray
    """(L, 4) float x1, y1, x2, y2 in pixels (gaps linearly interpolated)."""
    detected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    """(L,) bool, True where the detector found this face (False = interpolated)."""

    @property
    def start(self) -> int:
        """The first frame of the track."""
        return int(self.frames[0])

    @property
    def stop(self) -> int:
        """One past the last frame."""
        return int(self.frames[-1]) + 1

    def __len__(self) -> int:
        return len(self.frames)


def _iou(a: list[float], b: list[float]) -> float:
    xa, ya, xb, yb = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, xb - xa) * max(0.0, yb - ya)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy_track(scene_faces: list[list[dict[str, Any]]], cfg: FaceTrackConfig) -> list[dict[str, Any]]:
    """One pass of ``track_shot``: the next track's detections, taken out of ``scene_faces``."""
    track: list[dict[str, Any]] = []
    for frame_faces in scene_faces:
        for face in frame_faces:  # noqa: B909 - list mutated while iterated, as in the reference
            if not track:
                track.append(face)
                frame_faces.remove(face)
            elif face["frame"] - track[-1]["frame"] <= cfg.num_failed_det:
                if _iou(face["bbox"], track[-1]["bbox"]) > cfg.iou_threshold:
                    track.append(face)
                    frame_faces.remove(face)
            else:
                break
    return track


def _interpolated(track: list[dict[str, Any]], cfg: FaceTrackConfig) -> FaceTrack | None:
    """The track's boxes interpolated over every frame it spans, or None when it is too short or small."""
    if len(track) <= cfg.min_track:
        return None
    framenum = np.array([f["frame"] for f in track])
    bboxes = np.array([f["bbox"] for f in track], dtype=np.float64)
    frame_i = np.arange(framenum[0], framenum[-1] + 1)
    if len(framenum) > 1:
        boxes_i = np.stack([interp1d(framenum, bboxes[:, k])(frame_i) for k in range(4)], axis=1)
    else:
        boxes_i = bboxes
    size = max(np.mean(boxes_i[:, 2] - boxes_i[:, 0]), np.mean(boxes_i[:, 3] - boxes_i[:, 1]))
    if size <= cfg.min_face_size:
        return None
    return FaceTrack(frame_i, boxes_i, np.isin(frame_i, framenum))


def track_shot(scene_faces: list[list[dict[str, Any]]], cfg: FaceTrackConfig) -> list[FaceTrack]:
    """``run_pipeline.track_shot``: greedy IoU tracks over one scene's detections (consumes ``scene_faces``).

    ``scene_faces[k]`` lists the detections of one frame as dicts ``frame``, ``bbox`` (x1, y1, x2, y2).
    Faithful to the reference, including its quirk: a detection taken into a track is removed from the list
    being iterated, so the next detection of that frame is skipped in this pass (it stays for later tracks).
    """
    tracks: list[FaceTrack] = []
    while track := _greedy_track(scene_faces, cfg):
        if (kept := _interpolated(track, cfg)) is not None:
            tracks.append(kept)
    return tracks


def smoothed_crop_params(track: FaceTrack, kernel: int = 13) -> np.ndarray:
    """(L, 3) half-size s and centre x, y per frame, each ``scipy.signal.medfilt``-ed (zero padded edges)."""
    b = track.boxes
    s = np.maximum(b[:, 3] - b[:, 1], b[:, 2] - b[:, 0]) / 2
    y = (b[:, 1] + b[:, 3]) / 2
    x = (b[:, 0] + b[:, 2]) / 2
    return np.stack([signal.medfilt(v, kernel_size=kernel) for v in (s, x, y)], axis=1)


def _padded_crop(frame: np.ndarray, pad: int, rows: slice, cols: slice, value: int) -> np.ndarray:
    """``np.pad(frame, pad, constant=value)[rows, cols]`` without building the padded frame.

    Same result, including numpy's slice semantics for out-of-range or negative bounds.
    """
    h, w = frame.shape[:2]
    r0, r1, _ = rows.indices(h + 2 * pad)
    c0, c1, _ = cols.indices(w + 2 * pad)
    out = np.full((max(0, r1 - r0), max(0, c1 - c0), frame.shape[2]), value, dtype=frame.dtype)
    fr0, fr1 = max(r0, pad), min(r1, pad + h)  # rows that fall on the frame (padded coordinates)
    fc0, fc1 = max(c0, pad), min(c1, pad + w)
    if fr1 > fr0 and fc1 > fc0:
        out[fr0 - r0 : fr1 - r0, fc0 - c0 : fc1 - c0] = frame[fr0 - pad : fr1 - pad, fc0 - pad : fc1 - pad]
    return out


def crop_track(frames: np.ndarray, track: FaceTrack, cfg: FaceTrackConfig) -> np.ndarray:
    """``run_pipeline.crop_video`` in memory: (T, H, W, 3) uint8 -> (L, S, S, 3) uint8 face crops."""
    params = smoothed_crop_params(track, cfg.smooth_kernel)
    cs = cfg.crop_scale
    out = np.empty((len(track), cfg.crop_size, cfg.crop_size, 3), dtype=np.uint8)
    for k, (fidx, (bs, x, y)) in enumerate(zip(track.frames, params, strict=True)):
        bsi = int(bs * (1 + 2 * cs))  # the reference pads the frame by this much
        my, mx = y + bsi, x + bsi
        rows = slice(int(my - bs), int(my + bs * (1 + 2 * cs)))
        cols = slice(int(mx - bs * (1 + cs)), int(mx + bs * (1 + cs)))
        face = _padded_crop(frames[fidx], bsi, rows, cols, cfg.pad_value)
        if face.size == 0:
            face = np.full((1, 1, 3), cfg.pad_value, dtype=np.uint8)
        out[k] = cv2.resize(face, (cfg.crop_size, cfg.crop_size))
    return out


@dataclass
class FaceTrackResult:
    """Detections and tracks of one video."""

    n_frames: int
    detections: list[np.ndarray]
    """Per frame (K, 5) boxes x1, y1, x2, y2, score."""
    scenes: list[tuple[int, int]]
    tracks: list[FaceTrack]

    @property
    def detection_rate(self) -> float:
        """Fraction of frames with at least one detection."""
        return sum(len(d) > 0 for d in self.detections) / max(1, self.n_frames)

    @property
    def track_coverage(self) -> float:
        """Fraction of frames covered by some track."""
        covered = np.zeros(self.n_frames, dtype=bool)
        for t in self.tracks:
            covered[t.frames] = True
        return float(covered.mean()) if self.n_frames else 0.0

    def longest(self) -> FaceTrack | None:
        """The track with the most frames, or None without tracks."""
        return max(self.tracks, key=len) if self.tracks else None


def detect_faces(frames: np.ndarray, detector: FaceDetector) -> list[np.ndarray]:
    """Run ``detector`` on every frame of (T, H, W, 3) uint8 RGB: per frame (K, 5) boxes."""
    return [np.asarray(detector(np.ascontiguousarray(f)), dtype=np.float64).reshape(-1, 5) for f in frames]


def face_tracks(
    frames: np.ndarray, cfg: FaceTrackConfig | None = None, detector: FaceDetector | None = None
) -> FaceTrackResult:
    """Detect, split into scenes and track faces in (T, H, W, 3) uint8 RGB frames (25 fps for SyncNet)."""
    cfg = cfg or FaceTrackConfig()
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    own = detector is None
    det = make_detector(cfg) if own else detector
    try:
        dets = detect_faces(frames, det)
    finally:
        if own and hasattr(det, "close"):
            det.close()
    scenes = scene_cuts(frames, cfg.scene_threshold, cfg.min_scene_len)
    tracks: list[FaceTrack] = []
    for start, end in scenes:
        if end - start >= cfg.min_track:
            faces = [
                [{"frame": t, "bbox": d[:4].tolist(), "conf": d[4]} for d in dets[t]]
                for t in range(start, end)
            ]
            tracks.extend(track_shot(faces, cfg))
    return FaceTrackResult(n_frames=len(frames), detections=dets, scenes=scenes, tracks=tracks)


__all__ = [
    "FaceDetector",
    "FaceTrack",
    "FaceTrackConfig",
    "FaceTrackResult",
    "MediapipeFaceDetector",
    "S3FDDetector",
    "S3FDNet",
    "crop_track",
    "detect_faces",
    "face_tracks",
    "make_detector",
    "scene_cuts",
    "smoothed_crop_params",
    "track_shot",
]
