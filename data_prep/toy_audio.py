"""Toy speakers' audio: :func:`synthesize_audio`, speech-like audio with its syllable events.

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

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmgt.schema import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from mmgt_prep.toy_style import GENERATOR, SpeakerStyle

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

MIN_STRESS_GAP = 14  # frames between stressed peaks (so a retraction lasts >= 10 frames)
MAX_STRESS_GAP = 18  # frames: the drawn stress gap is uniform in [MIN_STRESS_GAP, MAX_STRESS_GAP]


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


@dataclass
class _StressClock:
    """A syllable may be stressed ``gap`` frames after the ``last`` stressed peak frame (Stress, above)."""

    last: int
    gap: int


def _syllable(
    style: SpeakerStyle,
    t: float,
    progress: float,
    phrase: int,
    total: float,
    clock: _StressClock,
    drift: float,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], float] | None:
    """The syllable starting at ``t`` (``progress`` through its phrase) and its duration, or None.

    None when it would end less than 0.15 s before ``total``; advances ``clock`` on a stress.
    """
    d_plain = float(np.clip(rng.uniform(0.12, 0.22) * style.rate, 0.12, 0.30))
    attack = float(rng.uniform(0.2, 0.35))
    d_stress = min(d_plain * 1.35, 0.30)
    peak_frame = int(round((t + attack * d_stress) * FPS))
    since = peak_frame - clock.last
    stressed = since >= clock.gap and (rng.random() < 0.85 or since >= 1.2 * FPS)
    d = d_stress if stressed else d_plain
    if t + d > total - 0.15:
        return None
    amp = 1.0 if stressed else float(rng.uniform(0.45, 0.7))
    vowels = list(VOWELS)
    syl = {
        "onset": t,
        "offset": t + d,
        "peak": t + attack * d,
        "stressed": bool(stressed),
        "amplitude": amp,
        "vowel": vowels[int(rng.integers(len(vowels)))],
        "consonant": bool(rng.random() < 0.7),
        "phrase": phrase,
        "pitch": 0.0,
    }
    syl["pitch"] = (
        style.f0
        * (1.0 + style.f0_drift * math.sin(2 * np.pi * 0.25 * (t + d / 2) + drift))
        * (1.08 - 0.16 * progress)
        * (1.15 if stressed else 1.0)
        * float(rng.uniform(0.97, 1.03))
    )
    if stressed:
        clock.last, clock.gap = (
            int(round(syl["peak"] * FPS)),
            int(rng.integers(MIN_STRESS_GAP, MAX_STRESS_GAP + 1)),
        )
    return syl, d


def _timeline(
    style: SpeakerStyle, total: float, rng: np.random.Generator
) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """The syllables and phrases of a clip of ``total`` seconds (Timeline, Stress, above)."""
    syllables: list[dict[str, Any]] = []
    phrases: list[dict[str, float]] = []
    t = float(rng.uniform(0.15, 0.35))
    clock = _StressClock(-(10**6), int(rng.integers(MIN_STRESS_GAP, MAX_STRESS_GAP + 1)))
    drift_phase = float(rng.uniform(0, 2 * np.pi))
    done = False
    while not done:
        n_syl = int(rng.integers(3, 8))
        first = len(syllables)
        for j in range(n_syl):
            made = _syllable(style, t, j / max(n_syl - 1, 1), len(phrases), total, clock, drift_phase, rng)
            if made is None:
                done = True
                break
            syllables.append(made[0])
            t += made[1] + float(rng.uniform(0.0, 0.03))
        if len(syllables) > first:
            phrases.append({"start": syllables[first]["onset"], "end": syllables[-1]["offset"]})
        t = syllables[-1]["offset"] + float(rng.uniform(0.2, 0.6)) if syllables else t + 0.3
        if t > total - 0.15 - 0.12:
            done = True
    return syllables, phrases


def _carrier(style: SpeakerStyle, syllables: list[dict[str, Any]], n: int) -> np.ndarray:
    """(n,) unit-RMS harmonic carrier on the pitch contour, weighted by the syllables' formants (Source)."""
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
    return carrier


def _consonants(syllables: list[dict[str, Any]], n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) high-passed noise bursts at the onsets of the syllables with a consonant (Consonants)."""
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
    return burst * hp


def synthesize_audio(
    style: SpeakerStyle, seconds: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict]:
    """Speech-like audio (N,) float32 with N = round(seconds * 25) * 640, and its events dict."""
    n_frames = int(round(seconds * FPS))
    n = n_frames * SAMPLES_PER_FRAME
    total = n / SAMPLE_RATE
    syllables, phrases = _timeline(style, total, rng)
    env = _syllable_envelope(syllables, n)
    audio = 0.25 * env * _carrier(style, syllables, n)
    audio = audio + _consonants(syllables, n, rng) + 1e-3 * rng.standard_normal(n)
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


__all__ = ["MAX_STRESS_GAP", "MIN_STRESS_GAP", "VOWELS", "synthesize_audio"]
