"""The worker of ``mmgt-prep source=videos``: one source file in, its clips in the store.

:class:`Worker` holds one mediapipe graph, the audio extractors and a ClipStoreWriter. Per source: probe
-> stream-decode -> 25 fps -> crop -> resize -> mediapipe holistic -> (T, 134, 3) keypoints -> short gaps
interpolated -> clips. A clip's audio spans exactly its frames (``n_frames x 640`` samples, zero-padded
where the track is shorter).

Keypoints are detected on the cropped S x S frames. mediapipe tracks along each *run* of frames
(clips whose frame ranges overlap form one run, :func:`plan_runs`; the tracker is reset at every run
start), so a clip's keypoints depend only on the frames of its run: reruns, shards and worker counts give
identical files. When some clips of a run are already done, the run is re-detected and only the missing
clips are written. Crops are per source (``person``: from keypoints detected on ``person_samples`` frames
spread over the source's clips), so overlapping clips share frames.

The frames of a clip are H.264-encoded while they are detected (one :class:`ClipEncoder` thread per open
clip) and a writer thread finishes a clip (audio, features, checksums, manifest) while the next one is
detected; both run at a lower CPU priority (``BACKGROUND_NICE``).

Memory: frames are streamed and cropped/resized as they are decoded and encoded as they are detected;
the whole audio track of a source is read at 16 kHz (~2 MB per minute).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.clipstore import AUDIO_FILE, FEATURES_DIR, KEYPOINTS_FILE, STATUS_OK, TMP_DIR, VIDEO_FILE
from mmgt.io import MediaError
from mmgt.schema import BODY, FACE, FPS, SAMPLE_RATE, SAMPLES_PER_FRAME, VISIBILITY_THRESHOLD
from mmgt_prep.videos_config import VideoPrepConfig
from mmgt_prep.videos_crop import CropBox, _read_image, crop_resize, fixed_crop, person_crop, resample_frames
from mmgt_prep.videos_discover import Segment, SourceTask, _frame_at, source_id
from mmgt_prep.videos_encode import ClipEncoder, lower_thread_priority

log = logging.getLogger("mmgt_prep.videos")  # the name the prep logged under before the split

ELSEWHERE = "elsewhere"
"""Event status of a clip that another prep on the same store makes (its source is claimed there)."""


def rms_db(audio: np.ndarray) -> float:
    """RMS level of (N,) float audio in dBFS (-200 for digital silence)."""
    if audio.size == 0:
        return -200.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return max(20.0 * math.log10(rms), -200.0) if rms > 0 else -200.0


def missing_fraction(kps: np.ndarray) -> float:
    """Fraction of frames of (T, 134, 3) keypoints with no body or face point at >= VISIBILITY_THRESHOLD."""
    idx = list(BODY) + list(FACE)
    present = (kps[:, idx, 2] >= VISIBILITY_THRESHOLD).any(axis=1)
    return float(1.0 - present.mean()) if len(present) else 1.0


@dataclass
class _Active:
    """A pending clip while its run is decoded."""

    seg: Segment
    encoder: ClipEncoder | None
    keypoints: list[np.ndarray] = field(default_factory=list)


@dataclass
class _Run:
    """Segments with overlapping frame ranges, detected with one continuous mediapipe track."""

    k0: int
    k1: int | None
    segments: list[Segment]


def plan_runs(segments: list[Segment]) -> list[_Run]:
    """Group segments (sorted by start) into runs of overlapping frame ranges.

    Runs with nothing left to write are dropped. Segments that merely touch start separate runs.
    """
    runs: list[_Run] = []
    for seg in sorted((s for s in segments if s.error is None), key=lambda s: (s.k0, s.clip_id)):
        last = runs[-1] if runs else None
        if last is not None and (last.k1 is None or seg.k0 < last.k1):
            last.segments.append(seg)
            last.k1 = None if last.k1 is None or seg.k1 is None else max(last.k1, seg.k1)
        else:
            runs.append(_Run(seg.k0, seg.k1, [seg]))
    return [r for r in runs if any(not s.done for s in r.segments)]


class Worker:
    """Per-process state: one mediapipe graph, the audio extractors, a ClipStoreWriter and a writer thread.

    :meth:`process` decodes and detects in the calling thread; each open clip's frames go to its
    :class:`ClipEncoder` as they are detected, and each finished clip (encoder flush, audio, features,
    checksums, rename) goes to one background thread, so a clip is written while the next one is
    detected (at most one write in flight). Progress goes to ``emit`` as events
    ``("clip", pid, {id, status, error, n_frames, silent_audio})`` and ``("frames", pid, n)``, possibly
    from the writer thread. Call :meth:`flush` to wait for the last write.
    """

    def __init__(self, cfg: VideoPrepConfig, emit: Callable[[tuple[Any, ...]], None]) -> None:
        import cv2

        from mmgt.pose_detect import HolisticDetector
        from mmgt_prep.store import ClipStoreWriter

        cv2.setNumThreads(1)
        self.cfg = cfg
        self.emit = emit
        self.pid = os.getpid()
        self.detector = HolisticDetector(
            static_image_mode=False,
            model_complexity=cfg.model_complexity,
            refine_face_landmarks=True,
            min_detection_confidence=cfg.min_detection_confidence,
            min_tracking_confidence=cfg.min_tracking_confidence,
        )
        self.extractors: list[Any] = cfg.extractors()
        self.writer = ClipStoreWriter(cfg.out, retry_failed=cfg.retry_failed)
        self.scratch = Path(cfg.out) / TMP_DIR / f"scratch-{socket.gethostname()}-{self.pid}"
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="clip-writer", initializer=lower_thread_priority
        )
        self._pending: Future[None] | None = None
        self._written: set[str] = set()

    def flush(self) -> None:
        """Wait until the clip being written (if any) is in the store."""
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def close(self) -> None:
        """Wait for the last write, stop the writer thread and the detector, remove the scratch folder."""
        self.flush()
        self._executor.shutdown(wait=True)
        self.detector.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    # ------------------------------------------------------------------ one source
    def process(self, task: SourceTask) -> None:
        """Make every pending clip of ``task``; every failure becomes a manifest row (and an event)."""
        self.frames_detected = 0
        self._written = set()
        try:
            with self.writer.claim(source_id(task.rel)) as mine:
                if mine:  # the manifest was re-read: clips another prep finished since discovery are done
                    for seg in task.pending:
                        seg.done = self.writer.is_done(seg.clip_id)
                        if seg.done:
                            self._elsewhere(seg)
                else:  # another prep is making this source: its clips are left to it
                    for seg in task.pending:
                        self._elsewhere(seg)
                    return
                self._process(task)
        except Exception as e:  # noqa: BLE001 - the whole source failed: a row per unwritten clip
            reason = f"{type(e).__name__}: {e}"
            tb = traceback.format_exc(limit=4)
            for seg in task.pending:
                if seg.clip_id not in self._written:
                    self._fail(task, seg, reason, tb)
        finally:
            self.emit(("frames", self.pid, self.frames_detected))

    def _elsewhere(self, seg: Segment) -> None:
        """``seg`` is (being) made by another process on the store: reported, not made here."""
        self._written.add(seg.clip_id)
        self.emit(("clip", self.pid, {"id": seg.clip_id, "status": ELSEWHERE, "error": None, "n_frames": 0}))

    def _fail(self, task: SourceTask, seg: Segment, reason: str, tb: str | None = None) -> None:
        record = seg.record(task.rel, self.cfg.size, {"traceback": tb} if tb else None)
        self.writer.record_failure(record, reason)
        self._written.add(seg.clip_id)
        result = {"id": seg.clip_id, "status": "failed", "error": reason, "n_frames": 0}
        self.emit(("clip", self.pid, result))

    def _submit_write(self, job: Callable[[], None]) -> None:
        self.flush()  # bounded: one clip written while the next is detected
        self._pending = self._executor.submit(job)

    def _process(self, task: SourceTask) -> None:
        from mmgt.io import iter_video_frames, probe_video, read_audio

        cfg = self.cfg
        path = Path(task.path)
        if task.kind == "image":
            image = _read_image(path)
            height, width = image.shape[:2]
            src_fps, duration, has_audio = float(FPS), 1.0 / FPS, False
            extra: dict[str, Any] = {"image": True, "source_size": [width, height]}

            def frames() -> Iterator[tuple[float, np.ndarray]]:
                yield 0.0, image

        else:
            info = probe_video(path)
            width, height, src_fps, duration, has_audio = (
                info.width,
                info.height,
                info.fps,
                info.duration,
                info.has_audio,
            )
            if not has_audio and cfg.require_audio:
                raise MediaError(f"{path}: no audio stream (set require_audio=false to accept silent clips)")
            extra = {"source_fps": round(src_fps, 4), "source_size": [width, height]}
            if info.variable_frame_rate:
                extra["variable_frame_rate"] = True

            def frames() -> Iterator[tuple[float, np.ndarray]]:
                return iter_video_frames(path)

        speaker = task.segments[0].speaker
        box = self._crop_box(task, frames, width, height, src_fps, duration, speaker)
        extra["crop"] = {"mode": cfg.crop, "box": box.as_list()}
        audio = read_audio(path) if has_audio else None
        if task.kind == "video" and audio is None:
            extra["audio"] = "none"
        runs = plan_runs(task.segments)
        if not runs:
            return
        self._decode_runs(task, runs, frames, src_fps, duration, box, audio, extra)

    def _crop_box(
        self,
        task: SourceTask,
        frames: Any,
        width: int,
        height: int,
        src_fps: float,
        duration: float,
        speaker: str,
    ) -> CropBox:
        cfg = self.cfg
        if cfg.crop != "person":
            return fixed_crop(cfg.crop, width, height, cfg.left_ratios.get(speaker))
        # sample frames spread over all the source's clips (done ones too: the crop must not depend on
        # what a previous run finished)
        segs = [s for s in task.segments if s.error is None]
        end = max(_frame_at(duration), 1)
        lo = min(s.k0 for s in segs)
        hi = max(end if s.k1 is None else min(s.k1, end) for s in segs)
        hi = max(hi, lo + 1)
        picks = np.linspace(lo, hi - 1, max(cfg.person_samples, 1)).round().astype(int)
        wanted = sorted(set(picks.tolist()))
        keypoints = []
        gen = frames()
        try:
            for k, img in resample_frames(gen, src_fps):
                if k > wanted[-1]:
                    break
                if k in wanted:
                    self.detector.reset()
                    keypoints.append(self.detector(img))
                    self.frames_detected += 1
        finally:
            if hasattr(gen, "close"):
                gen.close()
        box = person_crop(keypoints, width, height, cfg.person_scale)
        return box if box is not None else fixed_crop("center", width, height)

    def _decode_runs(
        self,
        task: SourceTask,
        runs: list[_Run],
        frames: Any,
        src_fps: float,
        duration: float,
        box: CropBox,
        audio: np.ndarray | None,
        extra: dict[str, Any],
    ) -> None:
        """Decode the source once, detect the frames of ``runs`` and feed their clips' encoders.

        Clips are finished as they end, failed when the source ends before them.
        """
        ends = [r.k1 for r in runs]
        last_needed = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        cursor = _RunCursor(runs)
        active: list[_Active] = []
        k_end = 0  # frames of the timeline seen
        stopped_early = False
        last_t = 0.0
        gen = frames()

        def timed() -> Iterator[tuple[float, np.ndarray]]:
            nonlocal last_t
            for t, img in gen:
                last_t = t
                yield t, img

        try:
            for k, img in resample_frames(timed(), src_fps):
                k_end = k + 1
                self._finish_ended(task, active, k, audio, extra)
                if last_needed is not None and k >= last_needed:
                    stopped_early = True
                    k_end = k
                    break
                run = cursor.at(k)
                if run is not None:
                    self._detect(k, img, run, box, active)
        except BaseException:
            _abort(active)
            raise
        finally:
            gen.close()
        if not stopped_early and task.kind == "video":
            _check_decoded(task, last_t + 1.0 / src_fps, duration, active)
        for a in active:  # clips running to the end of the source (or past it)
            self._finish(task, a, audio, extra)
        self._fail_unstarted(task, k_end)

    def _finish_ended(
        self, task: SourceTask, active: list[_Active], k: int, audio: np.ndarray | None, extra: dict[str, Any]
    ) -> None:
        """Finish (and close) the open clips that end before frame ``k``."""
        for a in [a for a in active if a.seg.k1 is not None and a.seg.k1 <= k]:
            active.remove(a)
            self._finish(task, a, audio, extra)

    def _fail_unstarted(self, task: SourceTask, k_end: int) -> None:
        """Failed rows for the pending clips of ``task`` that start after the ``k_end`` frames decoded."""
        for seg in task.pending:
            if seg.clip_id not in self._written:
                self._fail(
                    task,
                    seg,
                    f"OutOfRange: {task.path}: clip starts at {seg.k0 / FPS:.2f} s, after the end of the "
                    f"video ({k_end / FPS:.2f} s)",
                )

    def _detect(self, k: int, img: np.ndarray, run: _Run, box: CropBox, active: list[_Active]) -> None:
        """Frame ``k`` of ``run``: open the run's clips at its first frame, detect, feed the open clips."""
        if k == run.k0:
            self.detector.reset()
            for seg in run.segments:
                if not seg.done:
                    encoder = ClipEncoder(self.scratch / f"{seg.clip_id}.mp4", self.cfg.video_preset)
                    active.append(_Active(seg, encoder))
        frame = crop_resize(img, box, self.cfg.size)
        kp = self.detector(frame)
        self.frames_detected += 1
        for a in active:
            if a.seg.k0 <= k and (a.seg.k1 is None or k < a.seg.k1):
                assert a.encoder is not None
                a.encoder.add(frame)
                a.keypoints.append(kp)

    def _finish(
        self,
        task: SourceTask,
        a: _Active,
        audio: np.ndarray | None,
        extra: dict[str, Any],
    ) -> None:
        """Write one clip from its buffered frames and keypoints (checks first; failures recorded)."""
        from mmgt.pose_detect import interpolate_gaps

        cfg, seg = self.cfg, a.seg
        assert a.encoder is not None
        try:
            n = a.encoder.n
            clip_extra = dict(extra)
            _check_length(task, seg, n, clip_extra)
            span = Segment(seg.clip_id, seg.speaker, seg.split, seg.k0, seg.k0 + n, seg.kind, seg.index)
            raw = np.stack(a.keypoints).astype(np.float32)
            missing = missing_fraction(raw)
            clip_extra["missing_fraction"] = round(missing, 4)
            clip_audio = self._clip_audio(task, seg.k0, n, audio, clip_extra)
            rec = span.record(task.rel, cfg.size, clip_extra)
            if missing > cfg.max_missing_fraction:
                from mmgt.pose_detect import NoPersonError

                raise _ClipError(
                    f"{NoPersonError.__name__}: {task.path} [{rec.start:.2f}-{rec.end:.2f} s]: no person "
                    f"detected in {missing:.0%} of {n} frames "
                    f"(max_missing_fraction={cfg.max_missing_fraction})"
                )
            keypoints = interpolate_gaps(raw, cfg.max_gap)
            encoder = a.encoder
            silent = bool(clip_extra.get("silent_audio")) and task.kind == "video"
            a.encoder = None  # owned by the write job from here
            self._written.add(seg.clip_id)
            self._submit_write(self._write_job(rec, n, encoder, clip_audio, keypoints, silent))
        except _ClipError as e:
            self._fail(task, seg, str(e))
        finally:
            if a.encoder is not None:
                a.encoder.abort()

    def _clip_audio(
        self, task: SourceTask, k0: int, n: int, audio: np.ndarray | None, clip_extra: dict[str, Any]
    ) -> np.ndarray:
        """The audio (n x 640,) of the clip's frames ``[k0, k0 + n)``.

        Zero-padded past the end; silence without audio. Its level and flags go into ``clip_extra``.
        """
        if audio is None:
            if task.kind == "video":
                clip_extra["silent_audio"] = True
            return np.zeros(n * SAMPLES_PER_FRAME, dtype=np.float32)
        lo, hi = k0 * SAMPLES_PER_FRAME, (k0 + n) * SAMPLES_PER_FRAME
        clip_audio = audio[lo:hi]
        if clip_audio.shape[0] < hi - lo:
            pad = hi - lo - clip_audio.shape[0]
            if pad > SAMPLES_PER_FRAME:
                clip_extra["audio_padded_s"] = round(pad / SAMPLE_RATE, 3)
            clip_audio = np.pad(clip_audio, (0, pad))
        level = rms_db(clip_audio)
        clip_extra["audio_rms_db"] = round(level, 2)
        clip_extra["silent_audio"] = bool(level < self.cfg.silence_threshold_db)
        return clip_audio

    def _write_job(
        self,
        rec: Any,
        n: int,
        encoder: ClipEncoder,
        clip_audio: np.ndarray,
        keypoints: np.ndarray,
        silent: bool,
    ) -> Callable[[], None]:
        """The writer thread's job for one checked clip of ``n`` frames.

        It stores the clip, reports it and drops the encoder's file.
        """
        from mmgt.io import write_audio

        def write(tmp: Path) -> None:
            os.replace(encoder.finish(), tmp / VIDEO_FILE)
            write_audio(tmp / AUDIO_FILE, clip_audio, sample_rate=SAMPLE_RATE)
            np.save(tmp / KEYPOINTS_FILE, keypoints)
            if self.extractors:
                (tmp / FEATURES_DIR).mkdir()
            for ext in self.extractors:
                feats = np.asarray(ext(clip_audio, n_frames=n), dtype=np.float32)
                np.save(tmp / FEATURES_DIR / f"{ext.name}.npy", feats)

        def job() -> None:
            try:
                done = self.writer.write_clip(rec, write)
                ok = done.status == STATUS_OK
                result = {"id": rec.id, "status": done.status, "error": done.error}
                result.update(n_frames=n if ok else 0, silent_audio=ok and silent)
            except Exception as e:  # noqa: BLE001 - e.g. the manifest is not writable
                log.exception("%s: writing the clip failed", rec.id)
                result = {"id": rec.id, "status": "failed", "error": f"{type(e).__name__}: {e}"}
                result["n_frames"] = 0
            finally:
                encoder.abort()  # no-op when finished; deletes the file when writing failed
            self.emit(("clip", self.pid, result))

        return job


class _RunCursor:
    """The run a frame index belongs to, for increasing frame indices (runs sorted by start)."""

    def __init__(self, runs: list[_Run]) -> None:
        self.runs, self.i = runs, 0

    def at(self, k: int) -> _Run | None:
        runs = self.runs
        while self.i < len(runs) and runs[self.i].k1 is not None and k >= runs[self.i].k1:  # type: ignore[operator]
            self.i += 1
        if self.i >= len(runs) or k < runs[self.i].k0:
            return None
        return runs[self.i]


def _abort(active: list[_Active]) -> None:
    for a in active:
        if a.encoder is not None:
            a.encoder.abort()


def _check_decoded(task: SourceTask, decoded: float, duration: float, active: list[_Active]) -> None:
    """A video whose frames stop well before the duration its container declares is corrupt."""
    if duration > 0.5 and decoded < 0.9 * duration - 0.2:
        _abort(active)
        raise MediaError(
            f"{task.path}: truncated or corrupt: frames decode up to {decoded:.2f} s of the "
            f"{duration:.2f} s the container declares"
        )


def _check_length(task: SourceTask, seg: Segment, n: int, clip_extra: dict[str, Any]) -> None:
    """Reject a clip with no frames or a window cut by the end of the video.

    An interval past the end of the video is cut there (``clamped_end``).
    """
    if n == 0:
        raise _ClipError(f"OutOfRange: {task.path}: no frames at {seg.k0 / FPS:.2f} s")
    if seg.k1 is not None and seg.k0 + n < seg.k1:
        if seg.kind == "window":
            raise _ClipError(
                f"OutOfRange: {task.path}: the video ends at {(seg.k0 + n) / FPS:.2f} s, before the "
                f"clip end {seg.k1 / FPS:.2f} s"
            )
        if seg.kind == "interval":  # an interval past the end of the video: cut there
            clip_extra["clamped_end"] = True


class _ClipError(Exception):
    """A clip-level rejection; its message is the manifest ``error`` as is."""


__all__ = ["ELSEWHERE", "Worker", "missing_fraction", "plan_runs", "rms_db"]
