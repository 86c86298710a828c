"""Toy speakers' motion: :func:`synthesize_motion`, the cartoon's per-frame keypoints for the audio events.

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

"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmgt.schema import BODY_INDEX, FACE_OFFSET, FPS, LEFT_HAND, NUM_KEYPOINTS, RIGHT_HAND, SAMPLES_PER_FRAME
from mmgt_prep.toy_audio import VOWELS, _raised_cosine, _syllable_envelope
from mmgt_prep.toy_measures import stress_frames
from mmgt_prep.toy_style import TRAVEL_BOX, SpeakerStyle

STROKE_HALF = 1.5  # frames from stroke start to its centre
STROKE_HOLD = 1.0  # frames held at the apex
MAX_RETRACT = 16.0  # frames
TRAVEL_FRAMES = 28.0  # frames a (version 2) hand takes to reach its next home: peak speed < 1/3 of a stroke's
TURN_FRAMES = 10.0  # frames a (version 2) head turn takes
MOUTH_DARK = (70.0, 20.0, 30.0)  # the open mouth of version 1 (and of silence in version 2)
MOUTH_BACK = (60.0, 15.0, 75.0)  # version 2 at the lowest F2 of VOWELS (u, o: dark, tongue back)
MOUTH_FRONT = (235.0, 225.0, 205.0)  # at the highest F2 (i: teeth show)


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
    yaw: np.ndarray,
) -> np.ndarray:
    """iBUG-68 face points (T, 68, 2) on the cartoon head (centre (T, 2), roll (T,) radians).

    ``yaw`` (T,) turns the head: brows, eyes, nose and lips shift sideways by ``yaw x head_rx``, the jaw
    contour by half of that.
    """
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
    pts[:, 17:68, 0] += yaw[:, None] * rx
    pts[:, 0:17, 0] += 0.5 * yaw[:, None] * rx
    return centre[:, None, :] + _rot(pts, roll[:, None])


def _blinks(n_frames: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """Eye openness (T,) (lids at 10 % while closed) and the closed frames (Head, above)."""
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
    return eye_open, blinks


def _stroke_sides(gesture_hands: str, i: int) -> tuple[int, ...]:
    """The hands (-1 right, +1 left) that make the ``i``-th stroke."""
    if gesture_hands == "both":
        return (-1, 1)
    if gesture_hands == "alternate":
        return (-1,) if i % 2 == 0 else (1,)
    return (-1,) if gesture_hands == "right" else (1,)


def _strokes(
    style: SpeakerStyle, stresses: np.ndarray, rng: np.random.Generator
) -> dict[int, list[tuple[float, float, float]]]:
    """Per hand (-1, +1): the (centre frame, amplitude, angle jitter in degrees) of its beat strokes."""
    per_hand: dict[int, list[tuple[float, float, float]]] = {-1: [], 1: []}
    for i, c in enumerate(stresses):
        amp = style.stroke_amplitude * rng.uniform(0.8, 1.0)
        jitter = rng.uniform(-8.0, 8.0)
        for side in _stroke_sides(style.gesture_hands, i):
            per_hand[side].append((float(c), amp, jitter))
    return per_hand


def _arm(
    style: SpeakerStyle,
    side: int,
    strokes: list[tuple[float, float, float]],
    t_idx: np.ndarray,
    sway: np.ndarray,
    travel: np.ndarray,
) -> dict[str, np.ndarray]:
    """Shoulder (2,), elbow, wrist (T, 2) and 21 hand points (T, 21, 2) of one arm.

    ``sway`` (T,) is the wrist's slow vertical sway, ``travel`` (T, 2) its travel offset (:func:`_travel`).
    """
    hx, _ = style.head_center
    ready = np.array(style.ready_right if side < 0 else style.ready_left)
    disp = np.zeros((len(t_idx), 2))
    prof_total = np.zeros(len(t_idx))
    for j, (c, amp, jitter) in enumerate(strokes):
        ang = math.radians((style.stroke_angle if side < 0 else 180.0 - style.stroke_angle) + jitter)
        # each stroke's own profile (returns before the next stroke of this hand starts)
        prof = _stroke_profile(t_idx, c, strokes[j + 1][0] if j + 1 < len(strokes) else np.inf)
        disp += amp * prof[:, None] * np.array([math.cos(ang), math.sin(ang)])
        prof_total += prof
    wrist = ready + disp + travel
    wrist[:, 1] += sway
    shoulder = np.array([hx + side * style.shoulder_half_width, style.shoulder_y])
    elbow = _two_link(shoulder, wrist, style.upper_arm, style.forearm, side)
    flex = np.radians(style.wrist_flex) * prof_total - np.radians(10.0)
    curl = np.radians(style.finger_curl) * (1.0 + 0.5 * prof_total)
    hand = _hand_points(wrist, elbow, flex, curl, style.hand_size, side)
    return {"shoulder": shoulder, "elbow": elbow, "wrist": wrist, "hand": hand}


def _keypoints(
    style: SpeakerStyle,
    arms: dict[int, dict[str, np.ndarray]],
    face: np.ndarray,
    centre: np.ndarray,
    roll: np.ndarray,
    yaw: np.ndarray,
) -> np.ndarray:
    """(T, 134, 3) keypoints from the arms, the face points (T, 68, 2) and the head (ears: 0.3 yaw inward).

    Confidences as in Keypoint confidence, above: legs and feet below the frame at confidence 0; every
    x, y clipped to [0, 1].
    """
    hx, _ = style.head_center
    sy, w = style.shoulder_y, style.shoulder_half_width
    n_frames = len(face)
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
        ear = np.stack([ex - 0.3 * yaw * style.head_rx, np.full(n_frames, 0.02)], axis=-1)
        kps[:, b[name], :2] = centre + _rot(ear, roll)
    for i, side in zip(range(18, 24), (1, 1, 1, -1, -1, -1), strict=True):  # feet below the ankles
        kps[:, i, :2] = [hx + side * 0.7 * w, sy + 1.55]
    conf[:, 18:24] = 0.0
    inside = (kps[..., :2] >= 0.0).all(-1) & (kps[..., :2] <= 1.0).all(-1)
    kps[..., 2] = conf * inside
    kps[..., :2] = np.clip(kps[..., :2], 0.0, 1.0)
    return kps


def _phrase_starts(events: dict) -> np.ndarray:
    """Frames (float) at which the clip's phrases start."""
    return np.array([p["start"] * FPS for p in events.get("phrases", [])], dtype=np.float64)


def _travel(
    style: SpeakerStyle, side: int, starts: np.ndarray, t_idx: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(T, 2) offset of a wrist from its ready position (zero for ``travel`` 0: version 1, no draws).

    At every phrase start the hand sets off to a new home drawn in
    :data:`~mmgt_prep.toy_style.TRAVEL_BOX` (raised cosine over :data:`TRAVEL_FRAMES`).
    """
    offset = np.zeros((len(t_idx), 2))
    if style.travel <= 0:
        return offset
    hx, _ = style.head_center
    sy, w = style.shoulder_y, style.shoulder_half_width
    ready = np.array(style.ready_right if side < 0 else style.ready_left)
    current = np.zeros(2)
    for f in starts:
        target = np.array([hx + side * rng.uniform(*TRAVEL_BOX[:2]) * w, sy + rng.uniform(*TRAVEL_BOX[2:])])
        move = style.travel * (target - ready) - current
        offset += _raised_cosine((t_idx - f) / TRAVEL_FRAMES)[:, None] * move
        current = current + move
    return offset


def _turns(
    style: SpeakerStyle, starts: np.ndarray, t_idx: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(T,) head yaw in [-1, 1] x ``yaw_amplitude``: a new direction at every phrase start (v1: zero)."""
    yaw = np.zeros(len(t_idx))
    if style.yaw_amplitude <= 0:
        return yaw
    current = 0.0
    for f in starts:
        target = style.yaw_amplitude * rng.uniform(-1.0, 1.0)
        yaw += _raised_cosine((t_idx - f) / TURN_FRAMES) * (target - current)
        current = target
    return yaw


def mouth_colours(style: SpeakerStyle, events: dict, n_frames: int) -> np.ndarray:
    """(T, 3) RGB of the open mouth's interior.

    Version 2 (``vowel_mouth``): per frame, the syllables' vowel colours weighted by their envelopes, a
    vowel's colour running from :data:`MOUTH_BACK` to :data:`MOUTH_FRONT` with its F2 (``VOWELS``): the
    audio's spectral content, which no keypoint carries; :data:`MOUTH_DARK` where no syllable sounds.
    Version 1: dark.
    """
    out = np.tile(np.array(MOUTH_DARK), (n_frames, 1))
    syllables = events["syllables"]
    if not style.vowel_mouth or not syllables:
        return out
    f2 = np.array([f[1] for f in VOWELS.values()])
    lo, hi = f2.min(), f2.max()
    weights = np.stack(
        [
            _syllable_envelope([s], n_frames * SAMPLES_PER_FRAME).reshape(n_frames, -1).mean(1)
            for s in syllables
        ],
        1,
    )  # (T, S)
    mix = np.array([(VOWELS[s["vowel"]][1] - lo) / (hi - lo) for s in syllables])  # (S,) 0 back .. 1 front
    colours = np.array(MOUTH_BACK) + mix[:, None] * (np.array(MOUTH_FRONT) - np.array(MOUTH_BACK))  # (S, 3)
    total = weights.sum(1, keepdims=True)
    sounding = total[:, 0] > 1e-3
    # einsum's own loop, not BLAS: a matmul's rounding can depend on memory alignment, and one RGB level
    # flipped in the mouth changes the whole mp4 (x264's decisions) - the store must be byte-reproducible
    mixed = np.einsum("ts,sc->tc", weights, colours) / np.maximum(total, 1e-12)
    out[sounding] = np.round(mixed[sounding], 6)
    return out


def synthesize_motion(
    style: SpeakerStyle, events: dict, n_frames: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Per-frame motion of the cartoon for the audio events.

    Returns a dict with ``keypoints`` (T, 134, 3) float32, ``head_center`` (T, 2), ``head_roll`` (T,)
    radians, ``mouth`` (T,) opening, ``mouth_colour`` (T, 3) RGB (:func:`mouth_colours`), ``yaw`` (T,),
    ``eye_open`` (T,), ``blink_frames`` and ``stroke_frames`` lists. Version 2's travel and turns are drawn
    after every version-1 draw, so version 1's motion is unchanged.
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
    eye_open, blinks = _blinks(n_frames, rng)

    # beat strokes and the arms
    per_hand = _strokes(style, stresses, rng)
    sway = rng.uniform(0.001, 0.003, 2)
    sway_ph = rng.uniform(0, 2 * np.pi, 2)
    starts = _phrase_starts(events)
    travel = {side: _travel(style, side, starts, t_idx, rng) for side in (-1, 1)}
    yaw = _turns(style, starts, t_idx, rng)
    arms = {
        side: _arm(
            style,
            side,
            per_hand[side],
            t_idx,
            sway[k] * np.sin(2 * np.pi * 0.3 * secs + sway_ph[k]),
            travel[side],
        )
        for k, side in enumerate((-1, 1))
    }
    face = _face_points(style, centre, roll, mouth, eye_open, brow, yaw)
    return {
        "keypoints": _keypoints(style, arms, face, centre, roll, yaw).astype(np.float32),
        "head_center": centre,
        "head_roll": roll,
        "mouth": mouth,
        "mouth_colour": mouth_colours(style, events, n_frames),
        "yaw": yaw,
        "eye_open": eye_open,
        "blink_frames": blinks,
        "stroke_frames": {
            "right": [int(c) for c, _, _ in per_hand[-1]],
            "left": [int(c) for c, _, _ in per_hand[1]],
        },
    }


__all__ = [
    "MAX_RETRACT",
    "MOUTH_BACK",
    "MOUTH_DARK",
    "MOUTH_FRONT",
    "STROKE_HALF",
    "STROKE_HOLD",
    "TRAVEL_FRAMES",
    "TURN_FRAMES",
    "mouth_colours",
    "synthesize_motion",
]
