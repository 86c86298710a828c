"""Importers for keypoints made elsewhere (``mmgt-prep source=dwpose``): DWPose arrays -> clip store.

Two input formats become the stored (T, 134, 3) layout of :mod:`mmgt.schema` at 25 fps:

* **MMGT (T, 402) arrays** (one ``.npy`` per clip, ``SIA-IDE/MMGT``'s ``dwpose_npy``/``keypoints``
  files): 134 DWPose keypoints x (x_px, y_px, score) on a ``canvas`` x ``canvas`` frame, every number
  normalised by v' = 2 (v + 200) / 1000 - 1, scores included. Inverted by
  :func:`mmgt.schema.from_reference_402`. Default source frame rate 25.
* **EchoMimicV2 pose folders** (``0.npy`` ... ``N-1.npy``, one pickled dict per frame, as written by
  EchoMimicV2's pose extraction): ``bodies.candidate`` (18 n, 2) + ``subset``/``score`` (n, 18),
  ``hands`` (2 n, 21, 2) + ``hands_score``, ``faces`` (n, 68, 2) + ``faces_score``, normalised to the
  person crop, and ``draw_pose_params = [imh, imw, rb, re, cb, ce]``: EchoMimicV2 draws the pose on an
  imh x imw image and pastes it at rows rb:re, columns cb:ce of its square canvas, so a point maps to
  ((cb + x imw) / side, (rb + y imh) / side) with side = max(re, ce) (identity for the usual
  ``[768, 768, 0, 768, 0, 768]``). Default source frame rate 24 (EchoMimicV2's).
  ``hands[2 i]`` is person ``i``'s **left** hand and ``hands[2 i + 1]`` the right one, as in DWPose
  (``candidate[:, 92:113]`` stacked over ``candidate[:, 113:]``; checked on the sample: ``hands[0]``'s
  wrist lies on the body's left wrist in all 102 frames). With several people, the one with the highest
  mean body score is kept (as EchoMimicV2 does). The per-frame pickles are read with
  :func:`mmgt.untrusted.load_pickled_npy` (numpy arrays, scalars and plain containers only; a file that
  names anything else is refused before it runs), so downloaded folders are safe to import.

Confidence rules: DWPose scores (which exceed 1 slightly) are clipped to [0, 1]; body points DWPose
marked invisible (``subset`` = -1, i.e. score <= 0.3) and points DWPose blanked to -1 get confidence 0;
feet are not in the EchoMimicV2 dict (confidence 0). Then the frame contract of
:func:`mmgt.pose_detect.clip_to_frame`: points within 5 % outside the frame are clipped to it,
points further out get confidence 0.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.clipstore import POSE_VIDEO_FILE
from mmgt.pose_detect import clip_to_frame
from mmgt.schema import (
    FACE,
    FPS,
    LEFT_HAND,
    NUM_KEYPOINTS,
    REFERENCE_CANVAS,
    RIGHT_HAND,
    VISIBILITY_THRESHOLD,
    from_reference_402,
)
from mmgt.untrusted import UntrustedFileError, load_npy, load_pickled_npy, npy_header
from mmgt_prep.splits import SplitSettings, plan_splits, resplit_rows

log = logging.getLogger("mmgt_prep.importers")

"""Rendered pose video written next to ``keypoints.npy`` by the importer (clips have no real video)."""
FORMAT_402 = "mmgt402"
FORMAT_ECHOMIMIC = "echomimicv2"
DEFAULT_SRC_FPS: dict[str, float] = {FORMAT_402: float(FPS), FORMAT_ECHOMIMIC: 24.0}
"""Source frame rate per format when ``src_fps`` is not given."""


class ImportFormatError(ValueError):
    """A keypoint file or folder that does not follow the expected format (the message names it)."""


# --------------------------------------------------------------------------- MMGT (T, 402)
def load_mmgt_402(path: str | Path, canvas: int = REFERENCE_CANVAS) -> np.ndarray:
    """An MMGT normalised DWPose array file (T, 402) -> (T, 134, 3) float32 stored keypoints.

    Uses :func:`mmgt.schema.from_reference_402` (pixel coordinates on a ``canvas`` x ``canvas`` frame;
    the scores were normalised too and are restored), then clips scores to [0, 1] and applies the
    frame contract. Raises :class:`ImportFormatError` naming the file for anything else.
    """
    path = Path(path)
    try:
        arr = load_npy(path, f"MMGT keypoint array (T, {NUM_KEYPOINTS * 3})")
    except UntrustedFileError as e:
        raise ImportFormatError(str(e)) from e
    if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[1] != NUM_KEYPOINTS * 3:
        raise ImportFormatError(
            f"{path}: expected an MMGT keypoint array of shape (T, {NUM_KEYPOINTS * 3}), got "
            f"{getattr(arr, 'shape', type(arr).__name__)}"
        )
    if arr.shape[0] == 0:
        raise ImportFormatError(f"{path}: the array has no frames")
    if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise ImportFormatError(f"{path}: expected finite floating-point values (dtype {arr.dtype})")
    kps = from_reference_402(arr.astype(np.float64), canvas=canvas)
    return clip_to_frame(kps)


# --------------------------------------------------------------------------- EchoMimicV2 folders
def _frame_files(folder: Path) -> list[Path]:
    """``0.npy`` ... ``N-1.npy`` of a pose folder in frame order (gaps in the numbering are an error)."""
    files = {int(p.stem): p for p in folder.glob("*.npy") if p.stem.isdigit()}
    if not files:
        raise ImportFormatError(f"{folder}: no per-frame pose files 0.npy, 1.npy, ... in this folder")
    missing = sorted(set(range(max(files) + 1)) - set(files))
    if missing:
        raise ImportFormatError(f"{folder}: frame files missing from the sequence: {missing[:10]}")
    return [files[i] for i in range(len(files))]


def _as_array(d: dict, key: str, source: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    if key not in d:
        raise ImportFormatError(f"{source}: missing key {key!r} (keys: {sorted(d)})")
    arr = np.asarray(d[key], dtype=np.float64)
    if arr.ndim != len(shape_tail) + 1 or arr.shape[1:] != shape_tail:
        raise ImportFormatError(
            f"{source}: {key!r} has shape {arr.shape}, expected (n, {', '.join(map(str, shape_tail))})"
        )
    return arr


def _scores(d: dict, key: str, xy: np.ndarray) -> np.ndarray:
    """Scores for ``xy`` (..., 2): ``d[key]`` when present (ControlNet's DWPose dicts have none: 1)."""
    if key in d and d[key] is not None:
        s = np.asarray(d[key], dtype=np.float64)
        if s.size != int(np.prod(xy.shape[:-1])):
            raise ImportFormatError(f"{key!r} has shape {s.shape}, expected {xy.shape[:-1]}")
        s = s.reshape(xy.shape[:-1])
    else:
        s = np.ones(xy.shape[:-1])
    return np.where((xy == -1).all(axis=-1), 0.0, s)  # DWPose blanks undetected points to -1


def _body(bodies: dict, source: str, kps: np.ndarray) -> int | None:
    """Fill the 18 body points of ``kps`` (134, 3) from a ``bodies`` dict; returns the person kept.

    The person kept is the one with the highest mean body score; None when nobody is in the frame.
    """
    cand = _as_array(bodies, "candidate", source, (2,))
    subset = np.asarray(bodies.get("subset", np.zeros((0, 18))), dtype=np.float64).reshape(-1, 18)
    if subset.shape[0] == 0:
        return None
    body_score = bodies.get("score")
    body_score = (
        np.asarray(body_score, dtype=np.float64).reshape(-1, 18)
        if body_score is not None
        else (subset >= 0).astype(np.float64)
    )
    person = int(np.argmax(body_score.mean(axis=1))) if subset.shape[0] > 1 else 0
    for j in range(18):
        idx = int(subset[person, j])
        if 0 <= idx < len(cand):
            kps[j, :2] = cand[idx]
            kps[j, 2] = body_score[person, j]
    return person


def _hands_and_face(d: dict, source: str, person: int, kps: np.ndarray) -> None:
    """Fill the hands (``hands[2 person]`` left, ``+ 1`` right) and the face of ``person`` into ``kps``."""
    hands = _as_array(d, "hands", source, (21, 2))
    h_sc = _scores(d, "hands_score", hands)
    h0 = 2 * person if hands.shape[0] >= 2 * person + 2 else 0
    for k, region in enumerate((LEFT_HAND, RIGHT_HAND)):
        if h0 + k < hands.shape[0]:
            kps[region.start : region.stop, :2] = hands[h0 + k]
            kps[region.start : region.stop, 2] = h_sc[h0 + k]

    faces = _as_array(d, "faces", source, (68, 2))
    f_sc = _scores(d, "faces_score", faces)
    if faces.shape[0]:
        fi = person if faces.shape[0] > person else 0
        kps[FACE.start : FACE.stop, :2] = faces[fi]
        kps[FACE.start : FACE.stop, 2] = f_sc[fi]


def _to_canvas(params: Any, source: str, kps: np.ndarray) -> None:
    """Map ``kps`` x, y from the person crop to EchoMimicV2's square canvas (``draw_pose_params``)."""
    imh, imw, rb, re_, cb, ce = (float(v) for v in params)
    side = max(re_, ce)
    if side <= 0 or imh <= 0 or imw <= 0:
        raise ImportFormatError(f"{source}: invalid draw_pose_params {list(params)}")
    kps[:, 0] = (cb + kps[:, 0] * imw) / side
    kps[:, 1] = (rb + kps[:, 1] * imh) / side


def echomimic_frame_to_coco134(d: Any, source: str = "frame") -> np.ndarray:
    """One EchoMimicV2 / DWPose per-frame dict -> (134, 3) float32 (frame contract applied)."""
    if not isinstance(d, dict):
        raise ImportFormatError(f"{source}: expected a pose dict, got {type(d).__name__}")
    bodies = d.get("bodies")
    if not isinstance(bodies, dict):
        raise ImportFormatError(f"{source}: missing 'bodies' dict (keys: {sorted(d)})")
    kps = np.zeros((NUM_KEYPOINTS, 3), dtype=np.float64)
    person = _body(bodies, source, kps)
    if person is None:
        return kps.astype(np.float32)  # nobody in this frame
    _hands_and_face(d, source, person, kps)
    if d.get("draw_pose_params") is not None:
        _to_canvas(d["draw_pose_params"], source, kps)
    return clip_to_frame(kps)


def load_echomimic_dir(folder: str | Path) -> np.ndarray:
    """An EchoMimicV2 pose folder (``0.npy`` ... ``N-1.npy`` pickled dicts) -> (N, 134, 3) float32.

    Raises :class:`ImportFormatError` naming the folder or the frame file on bad content.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: EchoMimicV2 pose folder not found")
    out = []
    for f in _frame_files(folder):
        try:
            d = load_pickled_npy(f)
        except UntrustedFileError as e:
            raise ImportFormatError(str(e)) from e
        out.append(echomimic_frame_to_coco134(d, str(f)))
    return np.stack(out)


# --------------------------------------------------------------------------- time resampling
def resample_keypoints(
    kps: np.ndarray, src_fps: float, dst_fps: float = FPS, threshold: float = VISIBILITY_THRESHOLD
) -> np.ndarray:
    """(T, 134, 3) at ``src_fps`` -> (round(T / src_fps x dst_fps), 134, 3) float32 at ``dst_fps``.

    Output frame i samples source time i / dst_fps (source position p = i src_fps / dst_fps). x, y are
    interpolated linearly between frames floor(p) and floor(p) + 1 with confidence = min of the two
    when both are detected (confidence >= ``threshold``) or both are not; when only one is detected the
    nearer frame is copied (x, y and confidence), so a detection never blends with an undetected point.
    """
    kps = np.asarray(kps, dtype=np.float32)
    if kps.ndim != 3 or kps.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"resample_keypoints: expected (T, {NUM_KEYPOINTS}, 3), got {kps.shape}")
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"resample_keypoints: frame rates must be positive, got {src_fps} -> {dst_fps}")
    T = kps.shape[0]
    if T == 0 or src_fps == dst_fps:
        return kps.copy()
    n = max(1, int(round(T / src_fps * dst_fps)))
    p = np.minimum(np.arange(n) * (src_fps / dst_fps), T - 1)
    i0 = np.floor(p).astype(np.int64)
    i1 = np.minimum(i0 + 1, T - 1)
    w = (p - i0).astype(np.float32)[:, None]  # (n, 1)
    a, b = kps[i0], kps[i1]  # (n, K, 3)
    out = np.empty((n, NUM_KEYPOINTS, 3), dtype=np.float32)
    out[..., :2] = (1.0 - w[..., None]) * a[..., :2] + w[..., None] * b[..., :2]
    out[..., 2] = np.minimum(a[..., 2], b[..., 2])
    va, vb = a[..., 2] >= threshold, b[..., 2] >= threshold
    nearest = np.where((w < 0.5)[..., None], a, b)
    mixed = va != vb
    out[mixed] = nearest[mixed]
    return out


# --------------------------------------------------------------------------- runner
@dataclass
class ImportSource:
    """One clip to import: ``kind`` is :data:`FORMAT_402` or :data:`FORMAT_ECHOMIMIC`."""

    kind: str
    path: Path
    clip_id: str


def safe_name(name: str) -> str:
    """A file-system and id safe version of ``name`` ([A-Za-z0-9._-], others -> '_')."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return s or "clip"


def _is_echomimic_dir(folder: Path) -> bool:
    first = folder / "0.npy"
    if not first.is_file():
        return False
    try:  # the header alone (a 0-d object array): nothing is unpickled while detecting the format
        shape, dtype = npy_header(first)
    except UntrustedFileError:  # a corrupt 0.npy: treat the folder as not EchoMimicV2
        return False
    return shape == () and dtype.hasobject


def discover_sources(input_path: str | Path) -> list[ImportSource]:
    """The clips (import sources) under ``input_path``.

    ``input_path`` is a (T, 402) ``.npy`` file, an EchoMimicV2 pose folder, or a folder holding (T, 402)
    ``.npy`` files and/or EchoMimicV2 pose sub-folders (one level, sorted by name).
    """
    root = Path(input_path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: dwpose import input not found")
    if root.is_file():
        return [ImportSource(FORMAT_402, root, safe_name(root.stem))]
    if _is_echomimic_dir(root):
        return [ImportSource(FORMAT_ECHOMIMIC, root, safe_name(root.name))]
    sources = []
    for p in sorted(root.iterdir()):
        if p.is_file() and p.suffix == ".npy":
            sources.append(ImportSource(FORMAT_402, p, safe_name(p.stem)))
        elif p.is_dir() and _is_echomimic_dir(p):
            sources.append(ImportSource(FORMAT_ECHOMIMIC, p, safe_name(p.name)))
    if not sources:
        raise FileNotFoundError(
            f"{root}: nothing to import (expected (T, 402) .npy files or EchoMimicV2 pose folders "
            "0.npy..N.npy)"
        )
    return sources


def load_source(
    src: ImportSource, src_fps: float | None = None, canvas: int = REFERENCE_CANVAS
) -> np.ndarray:
    """Keypoints (T, 134, 3) of ``src`` resampled to 25 fps (``src_fps`` None = the format default)."""
    raw = load_mmgt_402(src.path, canvas) if src.kind == FORMAT_402 else load_echomimic_dir(src.path)
    fps = DEFAULT_SRC_FPS[src.kind] if src_fps is None else float(src_fps)
    return resample_keypoints(raw, fps, FPS)


def render_pose_video(kps: np.ndarray, path: Path, size: int) -> None:
    """Write the OpenPose-style rendering of ``kps`` (T, 134, 3) as a ``size`` x ``size`` 25 fps mp4."""
    from mmgt.io import write_video
    from mmgt.render import draw_pose

    write_video(path, draw_pose(kps, size), fps=FPS)


def _import_one(src: ImportSource, record: Any, writer: Any, fps: float, canvas: int, size: int) -> Any:
    """Load, resample and write one clip; a load failure becomes a ``failed`` row. Returns the row."""
    from mmgt.clipstore import KEYPOINTS_FILE

    try:
        kps = load_source(src, fps, canvas)
    except Exception as e:  # noqa: BLE001 - every failure becomes a manifest row
        log.warning("dwpose import: %s failed: %s", src.path, e)
        return writer.record_failure(record, f"{type(e).__name__}: {e}")
    record.n_frames = int(kps.shape[0])
    record.end = kps.shape[0] / FPS

    def write(tmp: Path) -> None:
        np.save(tmp / KEYPOINTS_FILE, kps.astype(np.float32))
        render_pose_video(kps, tmp / POSE_VIDEO_FILE, size)

    return writer.write_clip(record, write)


@dataclass(frozen=True)
class DwposeImport(SplitSettings):
    """``mmgt-prep source=dwpose``: the node of ``conf/source/dwpose.yaml``; :meth:`run` imports.

    The fields are the keys of ``conf/source/dwpose.yaml`` (the values and their meaning are there) +
    ``out``, ``retry_failed``, ``progress`` of ``conf/prep.yaml``.

    Each clip gets ``keypoints.npy`` (25 fps) and ``pose.mp4`` (rendered at ``size``); the manifest row
    has ``extra.has_video = False``. Splits: ``split=auto`` gives each input (``split_by=video``) or the
    import's speaker one split (:mod:`mmgt_prep.splits`). Unreadable inputs become ``failed`` rows with
    the reason and the batch continues; clips already in the store are skipped, and clips another prep
    is making are left to it.
    """

    input: str
    out: str
    src_fps: float | None
    canvas: int
    size: int
    speaker: str | None
    retry_failed: bool
    progress: bool

    def run(self) -> dict[str, Any]:
        """Import every source of ``input`` into ``out``; returns the summary.

        The summary is ``{ok, failed, skipped, elsewhere, frames, seconds, resplit, out}``.
        """
        from tqdm.auto import tqdm

        from mmgt_prep.store import ClipStoreWriter

        t0 = time.perf_counter()
        inp = Path(self.input)
        sources = discover_sources(inp)
        speaker = safe_name(self.speaker or (inp.name if inp.is_dir() else inp.parent.name))
        writer = ClipStoreWriter(self.out, retry_failed=self.retry_failed)
        split_of = self._splits(sources, speaker, writer.records)
        summary: dict[str, Any] = dict.fromkeys(("ok", "failed", "skipped", "elsewhere", "frames"), 0)
        summary.update(seconds=0.0, resplit=0, out=str(self.out))
        seen: set[str] = set()
        for src in tqdm(sources, desc="dwpose import", unit="clip", disable=not self.progress):
            self._import(src, self._record(src, speaker, split_of[src.clip_id]), writer, seen, summary)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        return summary

    def _splits(self, sources: list[ImportSource], speaker: str, records: Any) -> dict[str, str]:
        """Clip id -> split: ``split``, or with ``split=auto`` the planned split of the clip's group.

        The groups are one per source (``split_by=video``) or the one speaker of the import.
        """
        policy = self.split_policy
        if not policy.auto:
            return {src.clip_id: policy.split for src in sources}
        groups = {src.clip_id: policy.group_of(str(src.path), speaker) for src in sources}
        plan = plan_splits(policy, groups.values(), records, lambda r: policy.group_of(r.source, r.speaker))
        return {clip_id: plan[group] for clip_id, group in groups.items()}

    def _record(self, src: ImportSource, speaker: str, split: str) -> Any:
        from mmgt.clipstore import ClipRecord

        fps = DEFAULT_SRC_FPS[src.kind] if self.src_fps is None else self.src_fps
        return ClipRecord(
            id=src.clip_id,
            speaker=speaker,
            split=split,
            source=str(src.path),
            fps=float(FPS),
            size=self.size,
            extra={"has_video": False, "format": src.kind, "src_fps": fps},
        )

    def _import(self, src: ImportSource, record: Any, writer: Any, seen: set[str], summary: dict) -> None:
        """One source into the store (or a skip / duplicate / elsewhere count), counted in ``summary``."""
        from mmgt.clipstore import STATUS_OK

        if src.clip_id in seen:
            writer.record_failure(
                record, f"duplicate clip id {src.clip_id!r} (another input has the same name)"
            )
            summary["failed"] += 1
            return
        seen.add(src.clip_id)
        if writer.is_done(src.clip_id):
            summary["skipped"] += 1
            if self.resplit:
                summary["resplit"] += resplit_rows(
                    writer, [writer.records[src.clip_id]], lambda r: record.split
                )
            return
        with writer.claim(src.clip_id) as mine:
            if not mine or writer.is_done(src.clip_id):  # being made, or just made, by another process
                summary["elsewhere" if not mine else "skipped"] += 1
                return
            done = _import_one(src, record, writer, record.extra["src_fps"], self.canvas, self.size)
        ok = done.status == STATUS_OK
        summary["ok" if ok else "failed"] += 1
        summary["frames"] += done.n_frames if ok else 0
