"""Toy speakers: a deterministic procedural talking-cartoon dataset with a known audio -> motion relation.

Everything in MMGT trains and is demonstrated on this data on a 2-core CPU. Because the relation between
the audio and the motion is constructed (rules below), tiny models can be *measured* to have learned it:
the lip opening follows the audio envelope, and hand-speed peaks fall on stressed syllables.

Randomness and identity
-----------------------
* A speaker's identity (:class:`SpeakerStyle`: colours, proportions, voice, gesture style) depends only
  on ``(seed, speaker index)``: ``numpy.random.default_rng([seed, index, 0, 1])`` (the two extra words
  keep this stream disjoint from every clip stream). Hues are spread with the golden ratio over the
  speaker index (offset per seed) and the gesture hands cycle over ``right, both, left, alternate`` with
  the index, so speakers always differ visibly.
* Clip ``k`` of speaker ``s`` draws everything else from ``numpy.random.default_rng([seed, s, k])``. The
  same arguments give byte-identical ``keypoints.npy``, ``audio.wav`` and ``events.json``; the
  keypoints do not depend on the rendering size.

Versions (``mmgt-prep source=toy version=1|2``; records and events name theirs, a store is one version)
----------------------------------------------------------------------------------------------------------
* **1**, the original: small gestures (strokes of 0.07-0.10 of the frame around fixed hands), a frontal
  head, one mouth colour. Over the 2 s the demo scores, its speakers barely move: the reference frame shown
  still is a strong answer, and everything the mouth does is in the lip keypoints.
* **2** (the default, :data:`~mmgt_prep.toy_style.TOY_VERSION`): the same people and audio, made into a
  controlled probe of every part of Stage II:

  - *pose*: each hand travels to a new home on the torso at every phrase start (28-frame moves within
    :data:`~mmgt_prep.toy_style.TRAVEL_BOX`, past the midline), strokes of 0.12-0.16 of the frame, and the
    head turns (face features shift by up to 0.15-0.25 of the head's half-width). The reference frame
    repeated is then a weak baseline and following the driving pose (PoseGuider) pays: the demo measures
    PSNR/SSIM against both still-frame baselines and the hand-position error (``hands`` metric) against
    the reference frame repeated.
  - *audio*: the open mouth's interior takes a colour from the vowel's second formant (dark purple for
    u/o, bright "teeth" for i: :func:`~mmgt_prep.toy_motion.mouth_colours`), on top of the opening the lip
    keypoints carry. No keypoint holds the vowel, so only audio attention at the lips can render it: the
    demo measures mouth-region PSNR with the clip's own audio against another clip's (shuffled control).
  - *masks*: nothing audio-dependent is drawn outside the face and the hands (the torso, sleeves and
    background are static; arm motion is in the pose), so motion masks that confine audio attention to
    those regions lose nothing and unmasked attention has only noise to add: the demo's sweep compares
    ``mask_guidance`` motion / none / no_audio over seeds.
  - long sleeves: below the face only the hands show skin (what the ``hands`` metric detects).

  Version 2 draws its extras from its own streams (``default_rng([seed, index, 0, 3])`` for the style,
  after every version-1 draw for the motion), so version 1 stays reproducible.

Modules (this one writes clips and stores, and re-exports the public names of the others)
    * :mod:`mmgt_prep.toy_style`: :class:`SpeakerStyle`, :func:`speaker_style`;
    * :mod:`mmgt_prep.toy_audio`: :func:`synthesize_audio` (the audio rules);
    * :mod:`mmgt_prep.toy_motion`: :func:`synthesize_motion` (the motion and keypoint rules);
    * :mod:`mmgt_prep.toy_render`: :func:`render_frames`;
    * :mod:`mmgt_prep.toy_measures`: the measures of the constructed relation.

Per clip, ``events.json`` stores syllable onsets/offsets/peaks (s), stressed flags, phrase boundaries, the
stress and stroke frames and the blink frames.

API: :func:`speaker_style`, :func:`synthesize_audio`, :func:`synthesize_motion`, :func:`render_frames`,
:func:`generate_clip`, :func:`generate_toy_dataset`, and the measures :func:`toy_envelope`,
:func:`hand_speed_peaks`, :func:`stress_frames`, :func:`beat_alignment`, :func:`lip_envelope_r`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.schema import FPS, SAMPLE_RATE
from mmgt_prep import toy_audio, toy_measures, toy_motion, toy_render, toy_style
from mmgt_prep.settings import Settings
from mmgt_prep.toy_audio import *  # noqa: F403
from mmgt_prep.toy_audio import (
    _syllable_envelope,  # noqa: F401 - imported from here by tests/unit/mmgt/test_audio.py
    synthesize_audio,
)
from mmgt_prep.toy_measures import *  # noqa: F403
from mmgt_prep.toy_measures import stress_frames
from mmgt_prep.toy_motion import *  # noqa: F403
from mmgt_prep.toy_motion import synthesize_motion
from mmgt_prep.toy_render import *  # noqa: F403
from mmgt_prep.toy_render import render_frames
from mmgt_prep.toy_style import *  # noqa: F403
from mmgt_prep.toy_style import SpeakerStyle, speaker_style

EVENTS_FILE = "events.json"


@dataclass
class ToyClip:
    """One generated clip: frames (T, S, S, 3) uint8 RGB, audio (N,) float32, keypoints (T, 134, 3)."""

    frames: np.ndarray
    audio: np.ndarray
    keypoints: np.ndarray
    events: dict


def generate_clip(style: SpeakerStyle, seconds: float, size: int, rng: np.random.Generator) -> ToyClip:
    """Audio, motion and rendering of one clip of ``seconds`` (T = round(seconds * 25) frames)."""
    audio, events = synthesize_audio(style, seconds, rng)
    events["generator"] = style.generator
    n_frames = events["n_frames"]
    motion = synthesize_motion(style, events, n_frames, rng)
    frames = render_frames(style, motion, size)
    events["stress_frames"] = stress_frames(events).tolist()
    events["stroke_frames"] = motion["stroke_frames"]
    events["blink_frames"] = [int(f) for f in motion["blink_frames"]]
    return ToyClip(frames=frames, audio=audio, keypoints=motion["keypoints"], events=events)


def split_for(k: int, clips_per_speaker: int, test_fraction: float) -> str:
    """Split of clip ``k``: the last ``ceil(test_fraction * n)`` clips of a speaker are ``test``.

    The count is capped at ``n - 1`` so every speaker keeps at least one ``train`` clip (2 clips -> 1
    train, 1 test).
    """
    n_test = min(math.ceil(test_fraction * clips_per_speaker - 1e-9), clips_per_speaker - 1)
    return "test" if k >= clips_per_speaker - max(n_test, 0) else "train"


def generate_toy_dataset(
    out: str | Path,
    n_speakers: int = 4,
    clips_per_speaker: int = 2,
    seconds: float = 4.0,
    size: int = 128,
    seed: int = 0,
    test_fraction: float = 0.25,
    progress: bool = True,
    retry_failed: bool = False,
    version: int | None = None,
) -> dict[str, Any]:
    """Write a toy-speaker clip store at ``out`` (video.mp4, audio.wav, keypoints.npy, events.json per clip).

    Clip ids are ``toy_spk{s}_{k:03d}``; clips already in the store are skipped (failed ones are made again
    with ``retry_failed``), so an interrupted run resumes, and clips another process is making
    (:meth:`~mmgt_prep.store.ClipStoreWriter.claim`) are left to it. Splits follow :func:`split_for`.
    ``version``: the toy version (None: :data:`~mmgt_prep.toy_style.TOY_VERSION`); a store holding clips of
    another version is an error (a store is one version).
    Returns ``{ok, failed, skipped, elsewhere, seconds, out}`` where
    ``seconds`` is the wall time of the call.
    """
    from tqdm import tqdm

    from mmgt.clipstore import AUDIO_FILE, KEYPOINTS_FILE, STATUS_OK, VIDEO_FILE, ClipRecord
    from mmgt.io import write_audio, write_video
    from mmgt_prep.store import ClipStoreWriter

    t0 = time.perf_counter()
    _check_version(out, speaker_style(seed, 0, version).generator)
    writer = ClipStoreWriter(out, retry_failed=retry_failed)
    n_frames = int(round(seconds * FPS))
    summary: dict[str, Any] = {"ok": 0, "failed": 0, "skipped": 0, "elsewhere": 0, "seconds": 0.0}
    summary["out"] = str(out)
    bar = tqdm(total=n_speakers * clips_per_speaker, desc="toy speakers", unit="clip", disable=not progress)
    for spk in range(n_speakers):
        style = speaker_style(seed, spk, version)
        for k in range(clips_per_speaker):
            clip_id = f"{style.name}_{k:03d}"
            bar.update(1)
            if writer.is_done(clip_id):
                summary["skipped"] += 1
                continue
            record = ClipRecord(
                id=clip_id,
                speaker=style.name,
                split=split_for(k, clips_per_speaker, test_fraction),
                source="toy",
                start=0.0,
                end=n_frames / FPS,
                n_frames=n_frames,
                fps=float(FPS),
                size=size,
                extra={"seed": seed, "generator": style.generator, "speaker_index": spk, "clip_index": k},
            )

            def write(tmp: Path, spk: int = spk, k: int = k, style: SpeakerStyle = style) -> None:
                clip = generate_clip(style, seconds, size, np.random.default_rng([seed, spk, k]))
                write_video(tmp / VIDEO_FILE, clip.frames, fps=FPS)
                write_audio(tmp / AUDIO_FILE, clip.audio, sample_rate=SAMPLE_RATE)
                np.save(tmp / KEYPOINTS_FILE, clip.keypoints)
                (tmp / EVENTS_FILE).write_text(json.dumps(clip.events, indent=1, sort_keys=True) + "\n")

            with writer.claim(clip_id) as mine:
                if not mine:
                    summary["elsewhere"] += 1
                    continue
                if writer.is_done(clip_id):  # another process finished it since this one looked
                    summary["skipped"] += 1
                    continue
                done = writer.write_clip(record, write)
            summary["ok" if done.status == STATUS_OK else "failed"] += 1
    bar.close()
    summary["seconds"] = round(time.perf_counter() - t0, 3)
    return summary


def _check_version(out: str | Path, generator: str) -> None:
    """Raise if the store at ``out`` holds toy clips of another generator version than ``generator``."""
    from mmgt.clipstore import MANIFEST, read_manifest

    if not (Path(out) / MANIFEST).is_file():
        return
    found = {r.extra.get("generator") for r in read_manifest(out).values() if r.source == "toy"}
    other = sorted(str(g) for g in found - {generator})
    if other:
        raise ValueError(
            f"{out}: this store holds toy clips of {', '.join(other)}, not {generator}: a store is one toy "
            f"version. Write to a new out=, or ask for that version (version=1 for 'mmgt_prep.toy v1')."
        )


@dataclass(frozen=True)
class ToyStore(Settings):
    """The toy store at ``out``: the ``mmgt-prep source=toy`` node and the toy experiments' ``data.prepare``.

    As the node, ``conf/source/toy.yaml`` holds the CLI's values and :meth:`run` makes it; as
    ``data.prepare``, ``prepare(root)`` creates the toy store at ``out``, and only there. The other fields
    are :func:`generate_toy_dataset`'s arguments.

    A DataModule whose ``root`` is elsewhere and holds no store (``data.root=`` with a typo, or a real store
    not made yet) gets a FileNotFoundError saying so and how to make a store, instead of a toy store at
    that path. ``data.prepare.out=DIR`` asks for the toy store at DIR (``data.root`` follows it).
    """

    out: str
    n_speakers: int
    clips_per_speaker: int
    seconds: float
    size: int
    seed: int
    test_fraction: float
    progress: bool = True
    retry_failed: bool = False
    vae_steps: int = 0
    """> 0: also fit the toy VAE into ``<out>/vae`` (:func:`mmgt_prep.toy_vae.fit_store_vae`)."""
    version: int | None = None
    """The toy version (None: the current one, :data:`~mmgt_prep.toy_style.TOY_VERSION`; 1: the original)."""

    def run(self) -> dict[str, Any]:
        """Write (or resume) the toy store at ``out``; returns :func:`generate_toy_dataset`'s summary."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("out", "vae_steps")}
        summary = generate_toy_dataset(self.out, **settings)
        if self.vae_steps > 0:
            from mmgt_prep.toy_vae import fit_store_vae

            summary["vae"] = str(fit_store_vae(self.out, steps=self.vae_steps))
        return summary

    def __call__(self, root: str | Path) -> dict[str, Any]:
        """``data.prepare(root)``: :meth:`run` when ``root`` is ``out``, else the FileNotFoundError above."""
        root = Path(root)
        if root.resolve() != Path(self.out).resolve():
            raise FileNotFoundError(
                f"{root}: no clip store here, and this toy experiment makes its toy store only at "
                f"{self.out} (data.prepare.out), not at data.root={root} (a typo?). To train on your own "
                f"videos: `mmgt-prep source=videos input=<folder of videos> out={root}`, then "
                f"`mmgt-train experiment=smga data.root={root}` (or stage2_image, stage2_video); for a toy "
                f"store at that path: data.prepare.out={root} (docs/prep.md)"
            )
        return self.run()


__all__ = [
    "EVENTS_FILE",
    "ToyClip",
    "ToyStore",
    "generate_clip",
    "generate_toy_dataset",
    "split_for",
    *(
        name
        for module in (toy_style, toy_audio, toy_motion, toy_render, toy_measures)
        for name in module.__all__
    ),
]
