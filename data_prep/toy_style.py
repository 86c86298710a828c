"""Toy speakers' identities: :class:`SpeakerStyle` and :func:`speaker_style`; the generator's version.

An identity is the palettes, proportions, voice and gesture style; the generator's version is
:data:`GENERATOR`.

A speaker's identity depends only on ``(seed, speaker index)`` (the rules: :mod:`mmgt_prep.toy`,
Randomness and identity).
"""

from __future__ import annotations

import colorsys
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

TOY_VERSION = 2
"""The toy's current version (``mmgt-prep source=toy version=1``: the original, small-gesture toy)."""
GENERATORS: dict[int, str] = {1: "mmgt_prep.toy v1", 2: "mmgt_prep.toy v2"}
"""Generator name per version, recorded in every clip's record and events."""
GENERATOR = GENERATORS[TOY_VERSION]

SKIN_TONES: tuple[tuple[int, int, int], ...] = (
    (255, 219, 172), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36), (250, 206, 180),
)  # fmt: skip
HAIR_COLOURS: tuple[tuple[int, int, int], ...] = (
    (35, 25, 20), (90, 56, 37), (200, 160, 90), (150, 60, 30), (160, 160, 165), (20, 20, 30),
)  # fmt: skip
GESTURE_HANDS: tuple[str, ...] = ("right", "both", "left", "alternate")


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
    version: int = 1  # the toy version drawn (GENERATORS); v2 adds the three fields below
    travel: float = 0.0  # 1: each hand's home drifts to a new point on the torso every phrase (0: fixed)
    yaw_amplitude: float = 0.0  # head turns: largest sideways shift of the face features (x head_rx)
    vowel_mouth: bool = False  # mouth interior coloured by the vowel's F2 (else one dark red)

    @property
    def generator(self) -> str:
        """The generator name of this style's version (:data:`GENERATORS`)."""
        return GENERATORS[self.version]


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def speaker_style(seed: int, index: int, version: int | None = None) -> SpeakerStyle:
    """The identity of toy speaker ``index`` under ``seed`` (depends on these numbers only).

    ``version`` (default :data:`TOY_VERSION`): 1 the original toy; 2 the same person (colours, voice, head)
    with long sleeves, a larger mouth, larger strokes, travelling hands and head turns (:func:`_version2`).
    """
    version = TOY_VERSION if version is None else int(version)
    if version not in GENERATORS:
        raise ValueError(f"toy version must be one of {sorted(GENERATORS)}, got {version}")
    style = _version1(seed, index)
    return style if version == 1 else _version2(style)


def _version1(seed: int, index: int) -> SpeakerStyle:
    """The version-1 identity (the draws of the original toy, unchanged)."""
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


def _version2(v1: SpeakerStyle) -> SpeakerStyle:
    """Version 2 of a speaker: what the toy needs to exercise every part of Stage II (:mod:`mmgt_prep.toy`).

    Its own draws (``default_rng([seed, index, 0, 3])``), so version 1 stays as it was: long sleeves (below
    the face only the hands show skin), a mouth 1.3x wider that opens 1.4x more, strokes of 0.12-0.16 of the
    frame, hands that travel (``travel``), head turns (``yaw_amplitude``), the vowel-coloured mouth, and arms
    long enough to reach every point of the travel box plus a stroke.
    """
    rng = np.random.default_rng([v1.seed, v1.index, 0, 3])
    u = rng.uniform
    amp = u(0.12, 0.16)
    hx, _ = v1.head_center
    sy, w = v1.shoulder_y, v1.shoulder_half_width
    far = math.hypot((1.0 - TRAVEL_BOX[0]) * w, TRAVEL_BOX[3]) + 1.1 * amp  # shoulder -> far corner + stroke
    ready = abs(v1.ready_right[0] - (hx - w)) + abs(v1.ready_right[1] - sy)
    total = max(far, ready + 1.1 * amp) / 0.93
    return dataclasses.replace(
        v1,
        version=2,
        long_sleeves=True,
        mouth_width=v1.mouth_width * 1.3,
        mouth_max=v1.mouth_max * 1.4,
        stroke_amplitude=amp,
        upper_arm=0.53 * total,
        forearm=0.47 * total,
        travel=1.0,
        yaw_amplitude=u(0.15, 0.25),
        vowel_mouth=True,
    )


TRAVEL_BOX = (-0.3, 0.9, 0.10, 0.30)
"""Version 2's hand targets: x = ``hx + side x U(-0.3, 0.9) x shoulder_half_width`` (side -1 right hand, +1
left: each hand ranges over its half of the torso and 0.3 past the midline), y from ``shoulder_y + 0.10``
to ``shoulder_y + 0.30``."""


__all__ = [
    "GENERATOR",
    "GENERATORS",
    "TOY_VERSION",
    "TRAVEL_BOX",
    "GESTURE_HANDS",
    "HAIR_COLOURS",
    "SKIN_TONES",
    "SpeakerStyle",
    "speaker_style",
]
