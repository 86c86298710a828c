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

Audio (16 kHz mono float32, ``n_frames * 640`` samples, ``n_frames = round(seconds * 25)``)
---------------------------------------------------------------------------------------------
* Timeline: a leading silence of 0.15-0.35 s, then phrases of 3-7 syllables separated by pauses of
  0.2-0.6 s; syllables follow each other with 0-30 ms gaps. Syllables last 120-300 ms (unstressed
  0.12-0.22 s times the speaker's rate factor, stressed x1.35, clipped to [0.12, 0.30] s). Generation
  stops at the last syllable that ends at least 0.15 s before the clip end (trailing silence).
* Stress: a syllable is stressed when its envelope-peak frame is at least ``g`` frames after the previous
  stressed peak frame, ``g`` drawn uniformly from 14-18 frames (0.56-0.72 s) after every stress, and a
  coin (p = 0.85) agrees (forced once 1.2 s passed): 1-2 stresses per second of speech (0.75-1.5 per
  second of clip, pauses included), never closer than 14 frames. Stressed syllables are louder
  (amplitude 1.0 vs 0.45-0.7), longer and 15 % higher.
* Envelope of a syllable (onset ``o``, duration ``d``): raised-cosine attack over ``a = 0.2-0.35 d`` to
  its amplitude at the *peak* time ``o + a``, raised-cosine decay to 0 at ``o + d``.
* Source: a harmonic series on a pitch contour: F0 is interpolated between per-syllable targets =
  speaker F0 (100-250 Hz across speakers) x slow intonation drift (0.25 Hz sine, 4-9 %) x phrase
  declination (+8 % to -8 % over the phrase) x 1.15 on stressed syllables x +-3 % jitter. Harmonics up
  to 4 kHz are weighted by three formant resonances (Lorentzian, F1-F3 of a vowel drawn per syllable
  from ``VOWELS``, scaled by the speaker's formant factor) and a 1/sqrt(k) tilt, then normalised to unit
  RMS per sample, so the voiced signal is ``0.25 x envelope x carrier``.
* Consonants: 70 % of the syllables start with a 15-35 ms high-passed noise burst (decaying,
  RMS ~ 0.05 x the syllable amplitude). A noise floor of 1e-3 RMS is added; the peak stays below 0.95.

Motion and keypoints (25 fps; COCO-WholeBody-134, x, y in [0, 1] of the square frame)
-------------------------------------------------------------------------------------
* Mouth: ``opening[t] = mouth_max x smooth(mean of the syllable envelope over the 640 samples of frame
  t)``, smoothing kernel [1/4, 1/2, 1/4]. Inner lips (iBUG 60-67) lie on an ellipse of half-width
  ``mouth_width`` and half-height ``opening / 2``, so distance(62, 66) = ``opening`` exactly, and the
  mouth is drawn as that ellipse; outer lips (48-59) on a larger ellipse. The jaw (iBUG 0-16) drops by
  up to 0.4 x opening at the chin.
* Beat strokes: every stressed syllable gets a stroke centred on its peak frame ``f``. The wrist moves
  from its ready position by ``A x direction`` along a raised cosine over frames ``f - 1.5 .. f + 1.5``
  (A = speaker amplitude x U(0.8, 1), direction = speaker angle +- 8 deg), holds one frame, then
  returns along a raised cosine lasting until the next stroke of that hand starts (at least 10 frames,
  at most 16). With central-difference speeds the stroke peaks at exactly frame ``f`` (0.43 A/frame)
  while the retraction peaks at <= 0.16 A/frame, i.e. below half of any clip's maximum. Gesture hands:
  ``right``/``left`` (the other hand rests low in front), ``both`` (mirrored strokes) or ``alternate``.
  Hands also sway slowly (1-3 thousandths of the frame). The wrist bends by a further 15-30 deg (from
  -10 deg) with the stroke and the fingers curl up to 50 % more at the apex.
* Arms: fixed shoulders; elbows by two-link inverse kinematics (elbow outward and down), arm lengths
  chosen per speaker so every wrist position is reachable. Hands: 21 points (wrist, thumb, index,
  middle, ring, pinky, base to tip) built in the hand's frame (along the forearm, rotated by the bend).
* Head: a nod of a few pixels (raised cosine, 9 frames, centred one frame after every stress peak),
  eyebrows rising with it, slow sideways sway and roll. Blinks: eyes closed (lids at 10 %) for 2-3
  frames, the first after 0.5-3 s, then every 2-6 s.
* Keypoint confidence is 1 for drawn points inside the frame. Hips are placed anatomically (0.6 of the
  frame below the shoulders), always below the frame; hips, knees, ankles and feet have confidence 0.
  Every stored x, y is clipped to [0, 1] (out-of-frame points sit on the frame border). Neck = mean of
  the shoulders; nose = iBUG 30; eyes = eye-contour centres; ears at the sides of the head.

Rendering: cv2 (anti-aliased, sub-pixel) on a canvas of 2 x the size for sizes below 256, area-downscaled;
RGB uint8. Per clip, ``events.json`` stores syllable onsets/offsets/peaks (s), stressed flags, phrase
boundaries, the stress and stroke frames and the blink frames.

API: :func:`speaker_style`, :func:`synthesize_audio`, :func:`synthesize_motion`, :func:`render_frames`,
:func:`generate_clip`, :func:`generate_toy_dataset`, and the measures :func:`toy_envelope`,
:func:`hand_speed_peaks`, :func:`stress_frames`, :func:`beat_alignment`, :func:`lip_envelope_r`.
"""

from __future__ import annotations

import colorsys
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmgt.dsp import frame_rms
from mmgt.schema import (
    BODY_INDEX,
    FACE_OFFSET,
    FPS,
    LEFT_HAND,
    NUM_KEYPOINTS,
    RIGHT_HAND,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    lip_opening,
)

GENERATOR = "mmgt_prep.toy v1"
EVENTS_FILE = "events.json"

VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
    "ae": (660.0, 1720.0, 2410.0),
}
"""Vowel table: formants F1-F3 (Hz) of an adult male voice, scaled per speaker."""
_FORMANT_BW = (90.0, 110.0, 160.0)

SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (250, 206, 180),
)  # fmt: skip
HAIR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (35, 25, 20), (90, 56, 37), (200, 160, 90), (150, 60, 30), (160, 160, 165), (20, 20, 30),
)  # fmt: skip
GESTURE_HANDS: tuple[str, ...] = ("right", "both", "left", "alternate")

STROKE_HALF = 1.5  # frames from stroke start to its centre
STROKE_HOLD = 1.0  # frames held at the apex
MIN_STRESS_GAP = 14  # frames between stressed peaks (so a retraction lasts >= 10 frames)
MAX_STRESS_GAP = 18  # frames: the drawn stress gap is uniform in [MIN_STRESS_GAP, MAX_STRESS_GAP]
MAX_RETRACT = 16.0  # frames


# =========================================================================== speaker style
@dataclass
class SpeakerStyle:
    """A toy speaker's identity. Positions and lengths are fractions of the (square) frame; colours RGB."""

    name: str
    index: int
    seed: int
    background: tuple[int, int, int]
    skin: tuple[int, int, int]
    shirt: tuple[int, int, int]
    hair: tuple[int, int, int]
    lips: tuple[int, int, int]
    iris: tuple[int, int, int]
    hair_style: int  # 0 short, 1 long, 2 bun
    long_sleeves: bool
    head_center: tuple[float, float]
    head_rx: float
    head_ry: float
    neck_width: float
    shoulder_y: float
    shoulder_half_width: float
    upper_arm: float
    forearm: float
    arm_width: float
    hand_size: float
    mouth_width: float  # inner half-width
    mouth_max: float  # opening at envelope 1
    f0: float  # Hz
    f0_drift: float  # relative depth of the slow intonation drift
    formant_scale: float
    rate: float  # syllable-duration factor
    gesture_hands: str  # right | left | both | alternate
    stroke_amplitude: float
    stroke_angle: float  # degrees, image coords (0 = +x, 90 = down) for the right hand; mirrored for left
    ready_right: tuple[float, float]  # wrist hold/rest positions
    ready_left: tuple[float, float]
    wrist_flex: float  # degrees at the stroke apex
    finger_curl: float  # degrees per finger joint
    nod_amplitude: float
    brow_raise: float
    roll_amplitude: float  # degrees


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def speaker_style(seed: int, index: int) -> SpeakerStyle:
    """The identity of toy speaker ``index`` under ``seed`` (depends on these two numbers only)."""
    rng = np.random.default_rng([seed, index, 0, 1])
    per_seed = np.random.default_rng([seed, 0, 0, 2]).random(2)
    golden = 0.6180339887
    hue = float(per_seed[0] + golden * index) % 1.0
    u = rng.uniform
    background = _hsv(hue, u(0.18, 0.35), u(0.80, 0.93))
    shirt = _hsv(hue + 0.5 + u(-0.12, 0.12), u(0.50, 0.75), u(0.38, 0.62))
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    hair = HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]
    lips = (int(skin[0] * 0.75), int(skin[1] * 0.45), int(skin[2] * 0.45))
    iris = ((40, 60, 120), (70, 45, 25), (40, 90, 50))[int(rng.integers(3))]

    hx, hy = 0.5 + u(-0.02, 0.02), u(0.23, 0.27)
    rx = u(0.100, 0.125)
    ry = rx * u(1.15, 1.28)
    sy = hy + ry + u(0.06, 0.09)
    w = u(0.16, 0.22)
    hands = GESTURE_HANDS[index % len(GESTURE_HANDS)]
    amp = u(0.07, 0.10)
    angle = float(rng.choice([60.0, 80.0, 100.0, 120.0]) + u(-8, 8))
    ready_y = sy + u(0.13, 0.19)
    ready_dx = u(0.08, 0.12)
    rest = (u(0.04, 0.08), sy + u(0.26, 0.31))
    right = (hx - ready_dx, ready_y) if hands != "left" else (hx - rest[0], rest[1])
    left = (hx + ready_dx, ready_y) if hands != "right" else (hx + rest[0], rest[1])
    # arm length: every wrist position (ready, apex with 10 % margin) reachable at 90 % extension
    reach = 0.0
    for side, (wx, wy) in ((-1, right), (1, left)):
        a = math.radians(angle if side < 0 else 180.0 - angle)
        for k in (0.0, 1.1):
            px, py = wx + k * amp * math.cos(a), wy + k * amp * math.sin(a)
            reach = max(reach, math.hypot(px - (hx + side * w), py - sy))
    total = max(reach / 0.93, 0.28)
    f0 = 100.0 + 150.0 * ((per_seed[1] + 0.382 * index + u(-0.05, 0.05)) % 1.0)
    return SpeakerStyle(
        name=f"toy_spk{index}",
        index=index,
        seed=seed,
        background=background,
        skin=skin,
        shirt=shirt,
        hair=hair,
        lips=lips,
        iris=iris,
        hair_style=int(rng.integers(3)),
        long_sleeves=bool(rng.random() < 0.5),
        head_center=(hx, hy),
        head_rx=rx,
        head_ry=ry,
        neck_width=rx * u(0.32, 0.42),
        shoulder_y=sy,
        shoulder_half_width=w,
        upper_arm=0.53 * total,
        forearm=0.47 * total,
        arm_width=u(0.045, 0.06),
        hand_size=u(0.10, 0.12),
        mouth_width=rx * u(0.30, 0.40),
        mouth_max=u(0.035, 0.055),
        f0=float(f0),
        f0_drift=u(0.04, 0.09),
        formant_scale=1.0 + 0.15 * (f0 - 100.0) / 150.0,
        rate=u(0.85, 1.15),
        gesture_hands=hands,
        stroke_amplitude=amp,
        stroke_angle=angle,
        ready_right=right,
        ready_left=left,
        wrist_flex=u(15.0, 30.0),
        finger_curl=u(8.0, 22.0),
        nod_amplitude=u(0.010, 0.018),
        brow_raise=u(0.010, 0.018),
        roll_amplitude=u(1.5, 4.0),
    )


# =========================================================================== audio
def _raised_cosine(u: np.ndarray) -> np.ndarray:
    """Smooth step 0 -> 1 over u in [0, 1] (clipped outside)."""
    return 0.5 * (1.0 - np.cos(np.pi * np.clip(u, 0.0, 1.0)))


def _syllable_envelope(syllables: list[dict[str, Any]], n_samples: int) -> np.ndarray:
    """(n_samples,) float64 amplitude envelope of the syllables (raised-cosine attack and decay)."""
    env = np.zeros(n_samples)
    for s in syllables:
        i0 = int(round(s["onset"] * SAMPLE_RATE))
        i1 = min(int(round(s["offset"] * SAMPLE_RATE)), n_samples)
        if i1 <= i0:
            continue
        tt = np.arange(i0, i1) / SAMPLE_RATE - s["onset"]
        a, d = s["peak"] - s["onset"], s["offset"] - s["onset"]
        shape = np.where(tt < a, _raised_cosine(tt / a), 1.0 - _raised_cosine((tt - a) / (d - a)))
        env[i0:i1] = np.maximum(env[i0:i1], s["amplitude"] * shape)
    return env


def synthesize_audio(
    style: SpeakerStyle, seconds: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """Speech-like audio (N,) float32 with N = round(seconds * 25) * 640, and its events dict."""
    n_frames = int(round(seconds * FPS))
    n = n_frames * SAMPLES_PER_FRAME
    total = n / SAMPLE_RATE
    vowels = list(VOWELS)
    syllables: list[dict[str, Any]] = []
    phrases: list[dict[str, float]] = []
    t = float(rng.uniform(0.15, 0.35))
    last_stress, gap = -(10**6), int(rng.integers(MIN_STRESS_GAP, MAX_STRESS_GAP + 1))
    drift_phase = float(rng.uniform(0, 2 * np.pi))
    done = False
    while not done:
        n_syl = int(rng.integers(3, 8))
        first = len(syllables)
        for j in range(n_syl):
            d_plain = float(np.clip(rng.uniform(0.12, 0.22) * style.rate, 0.12, 0.30))
            attack = float(rng.uniform(0.2, 0.35))
            d_stress = min(d_plain * 1.35, 0.30)
            peak_frame = int(round((t + attack * d_stress) * FPS))
            since = peak_frame - last_stress
            stressed = since >= gap and (rng.random() < 0.85 or since >= 1.2 * FPS)
            d = d_stress if stressed else d_plain
            if t + d > total - 0.15:
                done = True
                break
            amp = 1.0 if stressed else float(rng.uniform(0.45, 0.7))
            syl = {
                "onset": t,
                "offset": t + d,
                "peak": t + attack * d,
                "stressed": bool(stressed),
                "amplitude": amp,
                "vowel": vowels[int(rng.integers(len(vowels)))],
                "consonant": bool(rng.random() < 0.7),
                "phrase": len(phrases),
                "pitch": 0.0,
            }
            progress = j / max(n_syl - 1, 1)
            syl["pitch"] = (
                style.f0
                * (1.0 + style.f0_drift * math.sin(2 * np.pi * 0.25 * (t + d / 2) + drift_phase))
                * (1.08 - 0.16 * progress)
                * (1.15 if stressed else 1.0)
                * float(rng.uniform(0.97, 1.03))
            )
            if stressed:
                last_stress, gap = (
                    int(round(syl["peak"] * FPS)),
                    int(rng.integers(MIN_STRESS_GAP, MAX_STRESS_GAP + 1)),
                )
            syllables.append(syl)
            t += d + float(rng.uniform(0.0, 0.03))
        if len(syllables) > first:
            phrases.append({"start": syllables[first]["onset"], "end": syllables[-1]["offset"]})
        t = syllables[-1]["offset"] + float(rng.uniform(0.2, 0.6)) if syllables else t + 0.3
        if t > total - 0.15 - 0.12:
            done = True

    env = _syllable_envelope(syllables, n)
    times = np.arange(n) / SAMPLE_RATE
    if syllables:
        knots_t = np.array([(s["onset"] + s["offset"]) / 2 for s in syllables])
        knots_f = np.array([s["pitch"] for s in syllables])
        f0 = np.interp(times, knots_t, knots_f)
        starts = np.array([s["onset"] for s in syllables])
        which = np.clip(np.searchsorted(starts, times, side="right") - 1, 0, len(syllables) - 1)
        table = np.array([VOWELS[s["vowel"]] for s in syllables]) * style.formant_scale  # (S, 3)
        formants = table[which]  # (n, 3)
    else:
        f0 = np.full(n, style.f0)
        formants = np.tile(np.array(VOWELS["a"]) * style.formant_scale, (n, 1))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    harm_phase = np.random.default_rng([style.seed, style.index, 0, 3]).uniform(0, 2 * np.pi, 64)
    carrier = np.zeros(n)
    power = np.zeros(n)
    for k in range(1, min(int(4000.0 / f0.min()), 64) + 1):
        fk = k * f0
        gain = sum(1.0 / (1.0 + ((fk - formants[:, j]) / bw) ** 2) for j, bw in enumerate(_FORMANT_BW))
        gain = gain * (fk < 4000.0) / math.sqrt(k)
        carrier += gain * np.sin(k * phase + harm_phase[k - 1])
        power += 0.5 * gain**2
    carrier /= np.sqrt(power + 1e-12)
    audio = 0.25 * env * carrier

    noise = rng.standard_normal(n)
    hp = np.diff(noise, prepend=0.0) / 2.0
    burst = np.zeros(n)
    for s in syllables:
        if not s["consonant"]:
            continue
        i0 = int(round(s["onset"] * SAMPLE_RATE))
        length = int(rng.uniform(0.015, 0.035) * SAMPLE_RATE)
        i1 = min(i0 + length, n)
        burst[i0:i1] = 0.07 * s["amplitude"] * np.exp(-3.0 * np.arange(i1 - i0) / length)
    audio = audio + burst * hp + 1e-3 * rng.standard_normal(n)
    peak = float(np.abs(audio).max())
    if peak > 0.95:
        audio *= 0.95 / peak

    r6 = _round6
    events = {
        "generator": GENERATOR,
        "seconds": r6(total),
        "n_frames": n_frames,
        "fps": FPS,
        "sample_rate": SAMPLE_RATE,
        "speaker": style.name,
        "f0": r6(style.f0),
        "syllables": [{k: (r6(v) if isinstance(v, float) else v) for k, v in s.items()} for s in syllables],
        "phrases": [{k: r6(v) for k, v in p.items()} for p in phrases],
        "stress_times": [r6(s["peak"]) for s in syllables if s["stressed"]],
    }
    return audio.astype(np.float32), events


def _round6(x: float) -> float:
    return round(float(x), 6)


# =========================================================================== measures
def toy_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-frame RMS envelope (T,) float32 at 25 fps of audio (N,) at 16 kHz; T = ceil(N / 640)
    (:func:`mmgt.dsp.frame_rms`)."""
    return frame_rms(audio).astype(np.float32)


def stress_frames(events: dict) -> np.ndarray:
    """Frame indices (sorted int64) of the stressed syllables' envelope peaks: round(peak * 25)."""
    fps = events.get("fps", FPS)
    return np.array(
        sorted(int(round(s["peak"] * fps)) for s in events["syllables"] if s["stressed"]), dtype=np.int64
    )


def hand_speed_peaks(
    keypoints: np.ndarray, rel_threshold: float = 0.5, min_distance: int = 3, min_speed: float = 1e-3
) -> np.ndarray:
    """Frame indices of hand-speed peaks of keypoints (T, 134, 3).

    Speed per frame = max over the two wrists (body 4, 7) of the central-difference (np.gradient)
    displacement in frame units per frame (0 where a wrist has confidence 0). Peaks are strict local
    maxima (> previous, >= next) of at least ``rel_threshold`` x the clip's maximum speed and
    ``min_speed``; of peaks closer than ``min_distance`` frames only the faster is kept. Sorted int64.
    """
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.shape[0] < 3:
        return np.zeros(0, dtype=np.int64)
    wrists = kps[:, [BODY_INDEX["right_wrist"], BODY_INDEX["left_wrist"]]]  # (T, 2, 3)
    speed = np.linalg.norm(np.gradient(wrists[..., :2], axis=0), axis=-1) * (wrists[..., 2] > 0)
    s = speed.max(axis=1)
    thr = max(rel_threshold * float(s.max()), min_speed)
    cand = [t for t in range(1, len(s) - 1) if s[t] > s[t - 1] and s[t] >= s[t + 1] and s[t] >= thr]
    kept: list[int] = []
    for t in sorted(cand, key=lambda i: -s[i]):
        if all(abs(t - k) >= min_distance for k in kept):
            kept.append(t)
    return np.array(sorted(kept), dtype=np.int64)


def beat_alignment(keypoints: np.ndarray, events: dict, tolerance: int = 2) -> float:
    """Share of :func:`hand_speed_peaks` within ``tolerance`` frames of a :func:`stress_frames` frame."""
    peaks, stresses = hand_speed_peaks(keypoints), stress_frames(events)
    if len(peaks) == 0:
        return 0.0
    if len(stresses) == 0:
        return 0.0
    dist = np.abs(peaks[:, None] - stresses[None, :]).min(axis=1)
    return float(np.mean(dist <= tolerance))


def lip_envelope_r(keypoints: np.ndarray, audio: np.ndarray) -> float:
    """Pearson r between the lip opening of keypoints (T, 134, 3) and :func:`toy_envelope` of audio."""
    lips = np.asarray(lip_opening(np.asarray(keypoints, dtype=np.float64)))
    env = toy_envelope(audio).astype(np.float64)
    n = min(len(lips), len(env))
    return float(np.corrcoef(lips[:n], env[:n])[0, 1])


# =========================================================================== motion
def _rot(v: np.ndarray, ang: np.ndarray) -> np.ndarray:
    """Rotate 2-vectors v (..., 2) by angles (...) in radians (image coordinates, +x toward +y)."""
    c, s = np.cos(ang), np.sin(ang)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1]], axis=-1)


def _bump(frames: np.ndarray, centres: np.ndarray, half: float) -> np.ndarray:
    """Sum of raised-cosine bumps (height 1, half-width ``half`` frames) at ``centres``: (T,)."""
    out = np.zeros(len(frames))
    for c in centres:
        x = np.clip((frames - c) / half, -1.0, 1.0)
        out += 0.5 * (1.0 + np.cos(np.pi * x))
    return out


def _stroke_profile(frames: np.ndarray, centre: float, next_centre: float = np.inf) -> np.ndarray:
    """Stroke coordinate (T,) in [0, 1] of one stroke centred on frame ``centre``.

    Raised-cosine rise over ``centre +- STROKE_HALF``, hold for ``STROKE_HOLD``, raised-cosine return that
    ends when the hand's next stroke starts (``next_centre - STROKE_HALF``) or after ``MAX_RETRACT``.
    """
    start, apex = centre - STROKE_HALF, centre + STROKE_HALF
    r0 = apex + STROKE_HOLD
    r1 = min(next_centre - STROKE_HALF, r0 + MAX_RETRACT)
    rise = _raised_cosine((frames - start) / (apex - start))
    fall = 1.0 - _raised_cosine((frames - r0) / (r1 - r0))
    return np.where(frames <= apex, rise, np.where(frames <= r0, 1.0, fall))


def _two_link(shoulder: np.ndarray, wrist: np.ndarray, l1: float, l2: float, side: int) -> np.ndarray:
    """Elbows (T, 2) from a shoulder (2,) and wrists (T, 2); side -1 right arm (image left), +1 left."""
    v = wrist - shoulder
    d = np.clip(np.linalg.norm(v, axis=-1, keepdims=True), 1e-6, l1 + l2 - 1e-6)
    e = v / d
    a = (l1**2 - l2**2 + d**2) / (2 * d)
    h = np.sqrt(np.clip(l1**2 - a**2, 0.0, None))
    perp = np.stack([-e[:, 1], e[:, 0]], axis=-1)
    return shoulder + a * e - side * h * perp


_FINGERS = (  # base (along, across) in hand units, spread (deg toward the thumb side), segment lengths
    ((0.10, 0.20), 55.0, (0.17, 0.15, 0.13)),  # thumb
    ((0.42, 0.17), 10.0, (0.20, 0.13, 0.10)),  # index
    ((0.45, 0.05), 0.0, (0.22, 0.14, 0.11)),  # middle
    ((0.43, -0.07), -8.0, (0.20, 0.13, 0.10)),  # ring
    ((0.38, -0.18), -18.0, (0.16, 0.10, 0.08)),  # pinky
)


def _hand_points(
    wrist: np.ndarray, elbow: np.ndarray, flex: np.ndarray, curl: np.ndarray, size: float, side: int
) -> np.ndarray:
    """21 hand points (T, 21, 2): wrist, then thumb, index, middle, ring, pinky (base to tip).

    side -1 = right hand (image left), +1 = left hand. ``flex`` bends the hand down (radians), ``curl``
    bends every finger joint toward the palm (radians).
    """
    u = wrist - elbow
    u = u / np.clip(np.linalg.norm(u, axis=-1, keepdims=True), 1e-9, None)
    u = _rot(u, -side * flex)
    v = -side * np.stack([u[:, 1], -u[:, 0]], axis=-1)  # thumb side
    pts = [wrist]
    for (a, b), spread, segs in _FINGERS:
        p = wrist + size * (a * u + b * v)
        pts.append(p)
        ang = np.radians(spread) * np.ones(len(wrist))
        for seg in segs:
            # a direction rotated from u toward v by ang, curling back toward the palm
            d = np.cos(ang)[:, None] * u + np.sin(ang)[:, None] * v
            p = p + size * seg * d
            pts.append(p)
            ang = ang - curl
    return np.stack(pts, axis=1)


def _face_points(
    style: SpeakerStyle,
    centre: np.ndarray,
    roll: np.ndarray,
    opening: np.ndarray,
    eye_open: np.ndarray,
    brow: np.ndarray,
) -> np.ndarray:
    """iBUG-68 face points (T, 68, 2) on the cartoon head (centre (T, 2), roll (T,) radians)."""
    t = len(centre)
    rx, ry = style.head_rx, style.head_ry
    pts = np.zeros((t, 68, 2))
    # jaw 0-16: lower head contour from ear level (image left) through the chin (8)
    th = np.pi + 0.12 - np.arange(17) * (np.pi + 0.24) / 16
    jaw_w = np.clip(np.sin(th), 0, None) ** 2
    pts[:, 0:17, 0] = 0.96 * rx * np.cos(th)
    pts[:, 0:17, 1] = 0.96 * ry * np.sin(th) + 0.4 * opening[:, None] * jaw_w
    # brows 17-21 (image left, outer -> inner) and 22-26 (inner -> outer)
    bx = np.linspace(-0.62, -0.14, 5)
    arch = 0.06 * np.sin(np.pi * np.linspace(0.1, 0.9, 5))
    pts[:, 17:22, 0] = bx * rx
    pts[:, 22:27, 0] = -bx[::-1] * rx
    by = (-0.34 - arch) * ry
    pts[:, 17:22, 1] = by - brow[:, None]
    pts[:, 22:27, 1] = by[::-1] - brow[:, None]
    # nose: bridge 27-30, nostrils 31-35
    pts[:, 27:31, 1] = np.linspace(-0.14, 0.20, 4) * ry
    pts[:, 31:36, 0] = np.array([-0.16, -0.08, 0.0, 0.08, 0.16]) * rx
    pts[:, 31:36, 1] = np.array([0.26, 0.28, 0.29, 0.28, 0.26]) * ry
    # eyes: 36-41 image-left eye (outer corner first), 42-47 image-right eye (inner corner first)
    ew, eh = 0.17 * rx, 0.12 * ry * eye_open
    for base, cx in ((36, -0.36 * rx), (42, 0.36 * rx)):
        cy = -0.08 * ry
        ex = np.array([-1.0, -1 / 3, 1 / 3, 1.0, 1 / 3, -1 / 3]) * ew
        ey = np.array([0.0, -0.94, -0.94, 0.0, 0.94, 0.94])
        pts[:, base : base + 6, 0] = cx + ex
        pts[:, base : base + 6, 1] = cy + ey[None, :] * eh[:, None]
    # lips: outer 48-59 and inner 60-67 on ellipses around the mouth centre
    my = 0.52 * ry + 0.3 * opening
    oh = opening / 2
    ang_o = np.pi + np.arange(12) * (2 * np.pi / 12)
    ang_i = np.pi + np.arange(8) * (2 * np.pi / 8)
    lip = 0.018
    mw = style.mouth_width
    pts[:, 48:60, 0] = 1.25 * mw * np.cos(ang_o)
    pts[:, 48:60, 1] = my[:, None] + (oh + lip)[:, None] * np.sin(ang_o)
    pts[:, 60:68, 0] = mw * np.cos(ang_i)
    pts[:, 60:68, 1] = my[:, None] + oh[:, None] * np.sin(ang_i)
    pts[:, 62, 0] = pts[:, 66, 0] = 0.0  # exact centre points (cos(3 pi / 2) rounding)
    return centre[:, None, :] + _rot(pts, roll[:, None])


def synthesize_motion(
    style: SpeakerStyle, events: dict, n_frames: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Per-frame motion of the cartoon for the audio events.

    Returns a dict with ``keypoints`` (T, 134, 3) float32, ``head_center`` (T, 2), ``head_roll`` (T,)
    radians, ``mouth`` (T,) opening, ``eye_open`` (T,), ``blink_frames`` and ``stroke_frames`` lists.
    """
    t_idx = np.arange(n_frames, dtype=np.float64)
    secs = t_idx / FPS
    # mouth: the syllable envelope averaged per frame, slightly smoothed
    env = _syllable_envelope(events["syllables"], n_frames * SAMPLES_PER_FRAME)
    env_f = env.reshape(n_frames, SAMPLES_PER_FRAME).mean(axis=1)
    padded = np.pad(env_f, 1, mode="edge")
    mouth = style.mouth_max * (0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:])
    stresses = stress_frames(events).astype(np.float64)

    # head: nods (+ brows) on stresses, slow sway and roll
    nod = _bump(t_idx, stresses + 1.0, 4.5)
    ph = rng.uniform(0, 2 * np.pi, 4)
    hx, hy = style.head_center
    centre = np.stack(
        [
            hx + 0.005 * np.sin(2 * np.pi * 0.2 * secs + ph[0]),
            hy + style.nod_amplitude * nod + 0.002 * np.sin(2 * np.pi * 0.3 * secs + ph[1]),
        ],
        axis=-1,
    )
    roll = np.radians(style.roll_amplitude) * np.sin(2 * np.pi * 0.15 * secs + ph[2])
    brow = style.brow_raise * nod

    # blinks
    eye_open = np.ones(n_frames)
    blinks: list[int] = []
    f = rng.uniform(0.5, 3.0) * FPS
    while True:
        length = int(rng.integers(2, 4))
        start = int(round(f))
        if start + length > n_frames:
            break
        eye_open[start : start + length] = 0.1
        blinks.extend(range(start, start + length))
        f += rng.uniform(2.0, 6.0) * FPS

    # beat strokes
    per_hand: dict[int, list[tuple[float, float, float]]] = {-1: [], 1: []}
    for i, c in enumerate(stresses):
        amp = style.stroke_amplitude * rng.uniform(0.8, 1.0)
        jitter = rng.uniform(-8.0, 8.0)
        if style.gesture_hands == "both":
            sides = (-1, 1)
        elif style.gesture_hands == "alternate":
            sides = (-1,) if i % 2 == 0 else (1,)
        else:
            sides = (-1,) if style.gesture_hands == "right" else (1,)
        for side in sides:
            per_hand[side].append((float(c), amp, jitter))
    sy, w = style.shoulder_y, style.shoulder_half_width
    sway = rng.uniform(0.001, 0.003, 2)
    sway_ph = rng.uniform(0, 2 * np.pi, 2)
    arms: dict[int, dict[str, np.ndarray]] = {}
    for k, side in enumerate((-1, 1)):
        ready = np.array(style.ready_right if side < 0 else style.ready_left)
        strokes = per_hand[side]
        disp = np.zeros((n_frames, 2))
        prof_total = np.zeros(n_frames)
        for j, (c, amp, jitter) in enumerate(strokes):
            ang = math.radians((style.stroke_angle if side < 0 else 180.0 - style.stroke_angle) + jitter)
            # each stroke's own profile (returns before the next stroke of this hand starts)
            prof = _stroke_profile(t_idx, c, strokes[j + 1][0] if j + 1 < len(strokes) else np.inf)
            disp += amp * prof[:, None] * np.array([math.cos(ang), math.sin(ang)])
            prof_total += prof
        wrist = ready + disp
        wrist[:, 1] += sway[k] * np.sin(2 * np.pi * 0.3 * secs + sway_ph[k])
        shoulder = np.array([hx + side * w, sy])
        elbow = _two_link(shoulder, wrist, style.upper_arm, style.forearm, side)
        flex = np.radians(style.wrist_flex) * prof_total - np.radians(10.0)
        curl = np.radians(style.finger_curl) * (1.0 + 0.5 * prof_total)
        hand = _hand_points(wrist, elbow, flex, curl, style.hand_size, side)
        arms[side] = {"shoulder": shoulder, "elbow": elbow, "wrist": wrist, "hand": hand}

    face = _face_points(style, centre, roll, mouth, eye_open, brow)
    kps = np.zeros((n_frames, NUM_KEYPOINTS, 3))
    conf = np.ones((n_frames, NUM_KEYPOINTS))
    b = BODY_INDEX
    for side, prefix in ((-1, "right"), (1, "left")):
        a = arms[side]
        kps[:, b[f"{prefix}_shoulder"], :2] = a["shoulder"]
        kps[:, b[f"{prefix}_elbow"], :2] = a["elbow"]
        kps[:, b[f"{prefix}_wrist"], :2] = a["wrist"]
        hand_range = RIGHT_HAND if side < 0 else LEFT_HAND
        kps[:, hand_range.start : hand_range.stop, :2] = a["hand"]
        hip = np.array([hx + side * 0.7 * w, sy + 0.6])
        kps[:, b[f"{prefix}_hip"], :2] = hip
        kps[:, b[f"{prefix}_knee"], :2] = hip + [0.0, 0.45]
        kps[:, b[f"{prefix}_ankle"], :2] = hip + [0.0, 0.9]
        for name in ("hip", "knee", "ankle"):
            conf[:, b[f"{prefix}_{name}"]] = 0.0
    kps[:, b["neck"], :2] = 0.5 * (kps[:, b["right_shoulder"], :2] + kps[:, b["left_shoulder"], :2])
    kps[:, FACE_OFFSET : FACE_OFFSET + 68, :2] = face
    kps[:, b["nose"], :2] = face[:, 30]
    kps[:, b["right_eye"], :2] = face[:, 36:42].mean(axis=1)
    kps[:, b["left_eye"], :2] = face[:, 42:48].mean(axis=1)
    for name, ex in (("right_ear", -style.head_rx), ("left_ear", style.head_rx)):
        kps[:, b[name], :2] = centre + _rot(np.array([[ex, 0.02]]), roll[:, None])[:, 0]
    for i, side in zip(range(18, 24), (1, 1, 1, -1, -1, -1), strict=True):  # feet below the ankles
        kps[:, i, :2] = [hx + side * 0.7 * w, sy + 1.55]
    conf[:, 18:24] = 0.0
    inside = (kps[..., :2] >= 0.0).all(-1) & (kps[..., :2] <= 1.0).all(-1)
    kps[..., 2] = conf * inside
    kps[..., :2] = np.clip(kps[..., :2], 0.0, 1.0)
    return {
        "keypoints": kps.astype(np.float32),
        "head_center": centre,
        "head_roll": roll,
        "mouth": mouth,
        "eye_open": eye_open,
        "blink_frames": blinks,
        "stroke_frames": {
            "right": [int(c) for c, _, _ in per_hand[-1]],
            "left": [int(c) for c, _, _ in per_hand[1]],
        },
    }


# =========================================================================== rendering
_SHIFT = 4
_ONE = 1 << _SHIFT


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(x * f, 0, 255)) for x in c)
    return r, g, b


def render_frames(style: SpeakerStyle, motion: dict[str, Any], size: int = 128) -> np.ndarray:
    """Draw the cartoon for every frame of ``motion``: (T, size, size, 3) uint8 RGB."""
    import cv2

    ss = 2 if size < 256 else 1
    cs = size * ss
    sc = cs * _ONE  # frame units -> shifted canvas pixels
    aa = cv2.LINE_AA

    def p(xy: np.ndarray | tuple[float, float]) -> tuple[int, int]:
        return int(round(xy[0] * sc)), int(round(xy[1] * sc))

    def poly(pts: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(pts) * sc).astype(np.int32).reshape(-1, 1, 2)

    def ln(v: float) -> int:  # a length in frame units -> integer canvas pixels (thickness)
        return max(1, int(round(v * cs)))

    def ax(a: float, b: float) -> tuple[int, int]:
        return max(0, int(round(a * sc))), max(0, int(round(b * sc)))

    hx, hy = style.head_center
    rx, ry = style.head_rx, style.head_ry
    sy, w = style.shoulder_y, style.shoulder_half_width
    nw = style.neck_width
    outline = _shade(style.shirt, 0.55)
    skin_dark = _shade(style.skin, 0.82)

    # static part: background gradient, torso, neck
    base = np.empty((cs, cs, 3), np.uint8)
    grad = np.linspace(1.05, 0.88, cs)[:, None, None]
    base[:] = np.clip(np.array(style.background)[None, None, :] * grad, 0, 255).astype(np.uint8)

    def draw_neck(img: np.ndarray) -> None:
        cv2.rectangle(img, p((hx - nw, hy + 0.4 * ry)), p((hx + nw, sy + 0.02)), skin_dark, -1, aa, _SHIFT)

    draw_neck(base)
    arc = np.linspace(np.pi, 1.5 * np.pi, 8)
    cap = 0.07
    left_cap = np.stack([hx - w + cap + cap * np.cos(arc), sy - 0.02 + cap + cap * np.sin(arc)], -1)
    right_cap = np.stack([2 * hx - left_cap[::-1, 0], left_cap[::-1, 1]], -1)
    torso = np.concatenate(
        [
            [[hx - w - 0.01, 1.1]],
            left_cap,
            [[hx - nw * 1.1, sy - 0.02], [hx + nw * 1.1, sy - 0.02]],
            right_cap,
            [[hx + w + 0.01, 1.1]],
        ]
    )
    torso[1 : 1 + len(arc), 0] -= 0.012
    torso[-1 - len(arc) : -1, 0] += 0.012
    cv2.fillPoly(base, [poly(torso)], style.shirt, aa, _SHIFT)
    cv2.polylines(base, [poly(torso)], False, outline, ln(0.006), aa, _SHIFT)
    collar = np.array([[hx - nw * 1.1, sy - 0.021], [hx, sy + 0.055], [hx + nw * 1.1, sy - 0.021]])
    cv2.fillPoly(base, [poly(collar)], skin_dark, aa, _SHIFT)

    kps_all = motion["keypoints"].astype(np.float64)
    frames = np.empty((len(kps_all), size, size, 3), np.uint8)
    b = BODY_INDEX
    sleeve = _shade(style.shirt, 0.9)
    for t, kps in enumerate(kps_all):
        img = base.copy()
        c = motion["head_center"][t]
        roll = float(np.degrees(motion["head_roll"][t]))
        face = kps[FACE_OFFSET : FACE_OFFSET + 68, :2]

        # arms and hands (in front of the torso)
        for prefix, hand_range in (("right", RIGHT_HAND), ("left", LEFT_HAND)):
            sh, el, wr = (kps[b[f"{prefix}_{j}"], :2] for j in ("shoulder", "elbow", "wrist"))
            aw = style.arm_width
            fore = sleeve if style.long_sleeves else style.skin
            cv2.line(img, p(sh), p(el), outline, ln(aw + 0.008), aa, _SHIFT)
            cv2.line(img, p(el), p(wr), outline, ln(aw * 0.85 + 0.008), aa, _SHIFT)
            cv2.line(img, p(sh), p(el), sleeve, ln(aw), aa, _SHIFT)
            cv2.line(img, p(el), p(wr), fore, ln(aw * 0.85), aa, _SHIFT)
            hand = kps[hand_range.start : hand_range.stop, :2]
            palm = hand[[0, 1, 5, 9, 13, 17]]
            chains = [poly(hand[1 + 4 * f : 5 + 4 * f]) for f in range(5)]
            hand_dark = _shade(style.skin, 0.6)
            cv2.fillConvexPoly(img, poly(palm), hand_dark, aa, _SHIFT)
            cv2.polylines(img, chains, False, hand_dark, ln(0.022), aa, _SHIFT)
            cv2.fillConvexPoly(img, poly(palm), style.skin, aa, _SHIFT)
            cv2.polylines(img, chains, False, style.skin, ln(0.013), aa, _SHIFT)

        # head: hair behind, ears, face, hair on top
        if style.hair_style == 1:  # long hair behind the head, the neck in front of it
            hair_c = c + _rot(np.array([0, 0.3 * ry]), np.radians(roll))
            cv2.ellipse(img, p(hair_c), ax(1.22 * rx, 1.15 * ry), roll, 0, 360, style.hair, -1, aa, _SHIFT)
            draw_neck(img)
        for ear in (kps[b["right_ear"], :2], kps[b["left_ear"], :2]):
            cv2.ellipse(img, p(ear), ax(0.16 * rx, 0.22 * ry), roll, 0, 360, skin_dark, -1, aa, _SHIFT)
        cv2.ellipse(img, p(c), ax(rx, ry), roll, 0, 360, style.skin, -1, aa, _SHIFT)
        jaw = np.concatenate([face[0:17], [c]])
        cv2.fillPoly(img, [poly(jaw)], style.skin, aa, _SHIFT)
        cv2.polylines(img, [poly(face[0:17])], False, skin_dark, ln(0.006), aa, _SHIFT)
        cv2.ellipse(img, p(c), ax(1.04 * rx, 1.02 * ry), roll, 190, 350, style.hair, ln(0.05), aa, _SHIFT)
        cv2.ellipse(img, p(c - _rot(np.array([0, 0.55 * ry]), np.radians(roll))), ax(0.95 * rx, 0.5 * ry),
                    roll, 180, 360, style.hair, -1, aa, _SHIFT)  # fmt: skip
        if style.hair_style == 2:
            top = c - _rot(np.array([0, 1.05 * ry]), np.radians(roll))
            cv2.circle(img, p(top), int(0.32 * rx * sc), style.hair, -1, aa, _SHIFT)

        # eyes, brows, nose
        for base_i in (36, 42):
            eye = face[base_i : base_i + 6]
            ec = eye.mean(axis=0)
            half_w = 0.5 * np.linalg.norm(eye[3] - eye[0])
            half_h = 0.5 * np.linalg.norm(0.5 * (eye[4] + eye[5]) - 0.5 * (eye[1] + eye[2])) / 0.94
            if motion["eye_open"][t] > 0.5:
                cv2.ellipse(img, p(ec), ax(half_w, half_h), roll, 0, 360, (250, 250, 250), -1, aa, _SHIFT)
                cv2.circle(img, p(ec), int(0.75 * half_h * sc), style.iris, -1, aa, _SHIFT)
                cv2.circle(img, p(ec), int(0.35 * half_h * sc), (15, 15, 15), -1, aa, _SHIFT)
                cv2.ellipse(img, p(ec), ax(half_w, half_h), roll, 0, 360, (40, 30, 30), ln(0.005), aa, _SHIFT)
            else:
                cv2.line(img, p(eye[0]), p(eye[3]), (40, 30, 30), ln(0.008), aa, _SHIFT)
        for brow in (face[17:22], face[22:27]):
            cv2.polylines(img, [poly(brow)], False, _shade(style.hair, 0.8), ln(0.014), aa, _SHIFT)
        cv2.polylines(img, [poly(face[[28, 30, 33]])], False, _shade(style.skin, 0.65), ln(0.007), aa, _SHIFT)
        cv2.polylines(img, [poly(face[31:36])], False, _shade(style.skin, 0.65), ln(0.007), aa, _SHIFT)

        # mouth: outer lips, then the open mouth (inner-lip ellipse; height = opening)
        mc = 0.5 * (face[62] + face[66])
        o_hw, o_hh = 0.5 * np.linalg.norm(face[54] - face[48]), 0.5 * np.linalg.norm(face[57] - face[51])
        i_hw, i_hh = 0.5 * np.linalg.norm(face[64] - face[60]), 0.5 * np.linalg.norm(face[66] - face[62])
        cv2.ellipse(img, p(mc), ax(o_hw, o_hh), roll, 0, 360, style.lips, -1, aa, _SHIFT)
        if i_hh * cs > 0.4:
            cv2.ellipse(img, p(mc), ax(i_hw, i_hh), roll, 0, 360, (70, 20, 30), -1, aa, _SHIFT)
        else:
            cv2.line(img, p(face[60]), p(face[64]), (90, 30, 40), ln(0.006), aa, _SHIFT)
        frames[t] = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA) if ss > 1 else img
    return frames


# =========================================================================== clips & dataset
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
    n_frames = events["n_frames"]
    motion = synthesize_motion(style, events, n_frames, rng)
    frames = render_frames(style, motion, size)
    events["stress_frames"] = stress_frames(events).tolist()
    events["stroke_frames"] = motion["stroke_frames"]
    events["blink_frames"] = [int(f) for f in motion["blink_frames"]]
    return ToyClip(frames=frames, audio=audio, keypoints=motion["keypoints"], events=events)


def split_for(k: int, clips_per_speaker: int, test_fraction: float) -> str:
    """Split of clip ``k``: the last ``ceil(test_fraction * n)`` clips of a speaker are ``test``, capped at
    ``n - 1`` so every speaker keeps at least one ``train`` clip (2 clips -> 1 train, 1 test)."""
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
) -> dict[str, Any]:
    """Write a toy-speaker clip store at ``out`` (video.mp4, audio.wav, keypoints.npy, events.json per clip).

    Clip ids are ``toy_spk{s}_{k:03d}``; clips already written (ok) are skipped, so an interrupted run
    resumes, and clips another process is making (:meth:`~mmgt_prep.store.ClipStoreWriter.claim`) are left
    to it. Splits follow :func:`split_for`. Returns ``{ok, failed, skipped, elsewhere, seconds, out}`` where
    ``seconds`` is the wall time of the call.
    """
    from tqdm import tqdm

    from mmgt.clipstore import AUDIO_FILE, KEYPOINTS_FILE, STATUS_OK, VIDEO_FILE, ClipRecord
    from mmgt.io import write_audio, write_video
    from mmgt_prep.store import ClipStoreWriter

    t0 = time.perf_counter()
    writer = ClipStoreWriter(out)
    n_frames = int(round(seconds * FPS))
    summary: dict[str, Any] = {"ok": 0, "failed": 0, "skipped": 0, "elsewhere": 0, "seconds": 0.0}
    summary["out"] = str(out)
    bar = tqdm(total=n_speakers * clips_per_speaker, desc="toy speakers", unit="clip", disable=not progress)
    for spk in range(n_speakers):
        style = speaker_style(seed, spk)
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
                extra={"seed": seed, "generator": GENERATOR, "speaker_index": spk, "clip_index": k},
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


class ToyStore:
    """The ``data.prepare`` of the toy experiments: ``prepare(root)`` creates the toy store at ``out``, and
    only there, with :func:`generate_toy_dataset` (the other arguments are its own).

    A DataModule whose ``root`` is elsewhere and holds no store (``data.root=`` with a typo, or a real store
    not made yet) gets a FileNotFoundError saying so and how to make a store, instead of a toy store at
    that path. ``data.prepare.out=DIR`` asks for the toy store at DIR (``data.root`` follows it).
    """

    def __init__(
        self,
        out: str | Path,
        n_speakers: int = 4,
        clips_per_speaker: int = 2,
        seconds: float = 4.0,
        size: int = 128,
        seed: int = 0,
        test_fraction: float = 0.25,
        progress: bool = True,
        vae_steps: int = 0,
    ) -> None:
        self.out = Path(out)
        self.vae_steps = int(vae_steps)  # > 0: also fit the toy VAE into <out>/vae (mmgt_prep.toy_vae)
        self.kwargs = {
            "n_speakers": n_speakers,
            "clips_per_speaker": clips_per_speaker,
            "seconds": seconds,
            "size": size,
            "seed": seed,
            "test_fraction": test_fraction,
            "progress": progress,
        }

    def __repr__(self) -> str:
        return f"ToyStore(out={str(self.out)!r}, {', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"

    def __call__(self, root: str | Path) -> dict[str, Any]:
        root = Path(root)
        if root.resolve() != self.out.resolve():
            raise FileNotFoundError(
                f"{root}: no clip store here, and this toy experiment makes its toy store only at "
                f"{self.out} (data.prepare.out), not at data.root={root} (a typo?). To train on your own "
                f"videos: `mmgt-prep source=videos input=<folder of videos> out={root}`, then "
                f"`mmgt-train experiment=smga data.root={root}` (or stage2_image, stage2_video); for a toy "
                f"store at that path: data.prepare.out={root} (docs/prep.md)"
            )
        summary = generate_toy_dataset(root, **self.kwargs)
        if self.vae_steps > 0:
            from mmgt_prep.toy_vae import fit_store_vae

            summary["vae"] = str(fit_store_vae(root, steps=self.vae_steps))
        return summary


def run(cfg: Any) -> dict[str, Any]:
    """``mmgt-prep source=toy`` runner: ``conf/source/toy.yaml`` keys -> :func:`generate_toy_dataset` (and,
    with ``vae_steps`` > 0, the toy VAE: :func:`mmgt_prep.toy_vae.fit_store_vae`)."""
    summary = generate_toy_dataset(
        cfg.out,
        n_speakers=cfg.n_speakers,
        clips_per_speaker=cfg.clips_per_speaker,
        seconds=cfg.seconds,
        size=cfg.size,
        seed=cfg.seed,
        test_fraction=cfg.test_fraction,
        progress=cfg.progress,
    )
    if cfg.get("vae_steps", 0) > 0:
        from mmgt_prep.toy_vae import fit_store_vae

        summary["vae"] = str(fit_store_vae(cfg.out, steps=cfg.vae_steps))
    return summary
