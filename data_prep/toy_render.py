"""Toy speakers' rendering: :func:`render_frames` draws the cartoon of a motion.

cv2 (anti-aliased, sub-pixel) on a canvas of 2 x the size for sizes below 256, area-downscaled; RGB
uint8.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmgt.schema import BODY_INDEX, FACE_OFFSET, LEFT_HAND, RIGHT_HAND
from mmgt_prep.toy_motion import _rot
from mmgt_prep.toy_style import SpeakerStyle

_SHIFT = 4
_ONE = 1 << _SHIFT


def _shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(x * f, 0, 255)) for x in c)
    return r, g, b


class _Canvas:
    """Drawing of one speaker's cartoon on a square canvas of ``cs`` pixels.

    cv2, anti-aliased, sub-pixel: coordinates in frame units are shifted by :data:`_SHIFT` bits.
    """

    def __init__(self, style: SpeakerStyle, cs: int) -> None:
        import cv2

        self.cv2, self.style, self.cs = cv2, style, cs
        self.sc = cs * _ONE  # frame units -> shifted canvas pixels
        self.outline = _shade(style.shirt, 0.55)
        self.skin_dark = _shade(style.skin, 0.82)
        self.sleeve = _shade(style.shirt, 0.9)

    def p(self, xy: np.ndarray | tuple[float, float]) -> tuple[int, int]:
        return int(round(xy[0] * self.sc)), int(round(xy[1] * self.sc))

    def poly(self, pts: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(pts) * self.sc).astype(np.int32).reshape(-1, 1, 2)

    def ln(self, v: float) -> int:  # a length in frame units -> integer canvas pixels (thickness)
        return max(1, int(round(v * self.cs)))

    def ax(self, a: float, b: float) -> tuple[int, int]:
        return max(0, int(round(a * self.sc))), max(0, int(round(b * self.sc)))

    def neck(self, img: np.ndarray) -> None:
        st, p = self.style, self.p
        hx, hy = st.head_center
        nw = st.neck_width
        top_left, bottom_right = p((hx - nw, hy + 0.4 * st.head_ry)), p((hx + nw, st.shoulder_y + 0.02))
        self.cv2.rectangle(img, top_left, bottom_right, self.skin_dark, -1, self.cv2.LINE_AA, _SHIFT)

    def base(self) -> np.ndarray:
        """The static part (cs, cs, 3): background gradient, torso, neck."""
        cv2, st, cs, poly, aa = self.cv2, self.style, self.cs, self.poly, self.cv2.LINE_AA
        hx, _ = st.head_center
        sy, w = st.shoulder_y, st.shoulder_half_width
        nw = st.neck_width
        base = np.empty((cs, cs, 3), np.uint8)
        grad = np.linspace(1.05, 0.88, cs)[:, None, None]
        base[:] = np.clip(np.array(st.background)[None, None, :] * grad, 0, 255).astype(np.uint8)
        self.neck(base)
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
        cv2.fillPoly(base, [poly(torso)], st.shirt, aa, _SHIFT)
        cv2.polylines(base, [poly(torso)], False, self.outline, self.ln(0.006), aa, _SHIFT)
        collar = np.array([[hx - nw * 1.1, sy - 0.021], [hx, sy + 0.055], [hx + nw * 1.1, sy - 0.021]])
        cv2.fillPoly(base, [poly(collar)], self.skin_dark, aa, _SHIFT)
        return base

    def arms(self, img: np.ndarray, kps: np.ndarray) -> None:
        """Arms and hands (in front of the torso) of keypoints (134, 3)."""
        cv2, st, p, poly, ln, aa = self.cv2, self.style, self.p, self.poly, self.ln, self.cv2.LINE_AA
        b = BODY_INDEX
        for prefix, hand_range in (("right", RIGHT_HAND), ("left", LEFT_HAND)):
            sh, el, wr = (kps[b[f"{prefix}_{j}"], :2] for j in ("shoulder", "elbow", "wrist"))
            aw = st.arm_width
            fore = self.sleeve if st.long_sleeves else st.skin
            cv2.line(img, p(sh), p(el), self.outline, ln(aw + 0.008), aa, _SHIFT)
            cv2.line(img, p(el), p(wr), self.outline, ln(aw * 0.85 + 0.008), aa, _SHIFT)
            cv2.line(img, p(sh), p(el), self.sleeve, ln(aw), aa, _SHIFT)
            cv2.line(img, p(el), p(wr), fore, ln(aw * 0.85), aa, _SHIFT)
            hand = kps[hand_range.start : hand_range.stop, :2]
            palm = hand[[0, 1, 5, 9, 13, 17]]
            chains = [poly(hand[1 + 4 * f : 5 + 4 * f]) for f in range(5)]
            hand_dark = _shade(st.skin, 0.6)
            cv2.fillConvexPoly(img, poly(palm), hand_dark, aa, _SHIFT)
            cv2.polylines(img, chains, False, hand_dark, ln(0.022), aa, _SHIFT)
            cv2.fillConvexPoly(img, poly(palm), st.skin, aa, _SHIFT)
            cv2.polylines(img, chains, False, st.skin, ln(0.013), aa, _SHIFT)

    def head(self, img: np.ndarray, kps: np.ndarray, c: np.ndarray, roll: float) -> None:
        """Hair behind, ears, face, hair on top; head centre ``c`` (2,), ``roll`` in degrees."""
        cv2, st, aa = self.cv2, self.style, self.cv2.LINE_AA
        p, poly, ln, ax = self.p, self.poly, self.ln, self.ax
        rx, ry = st.head_rx, st.head_ry
        b = BODY_INDEX
        face = kps[FACE_OFFSET : FACE_OFFSET + 68, :2]
        if st.hair_style == 1:  # long hair behind the head, the neck in front of it
            hair_c = c + _rot(np.array([0, 0.3 * ry]), np.radians(roll))
            cv2.ellipse(img, p(hair_c), ax(1.22 * rx, 1.15 * ry), roll, 0, 360, st.hair, -1, aa, _SHIFT)
            self.neck(img)
        for ear in (kps[b["right_ear"], :2], kps[b["left_ear"], :2]):
            cv2.ellipse(img, p(ear), ax(0.16 * rx, 0.22 * ry), roll, 0, 360, self.skin_dark, -1, aa, _SHIFT)
        cv2.ellipse(img, p(c), ax(rx, ry), roll, 0, 360, st.skin, -1, aa, _SHIFT)
        jaw = np.concatenate([face[0:17], [c]])
        cv2.fillPoly(img, [poly(jaw)], st.skin, aa, _SHIFT)
        cv2.polylines(img, [poly(face[0:17])], False, self.skin_dark, ln(0.006), aa, _SHIFT)
        cv2.ellipse(img, p(c), ax(1.04 * rx, 1.02 * ry), roll, 190, 350, st.hair, ln(0.05), aa, _SHIFT)
        cv2.ellipse(img, p(c - _rot(np.array([0, 0.55 * ry]), np.radians(roll))), ax(0.95 * rx, 0.5 * ry),
                    roll, 180, 360, st.hair, -1, aa, _SHIFT)  # fmt: skip
        if st.hair_style == 2:
            top = c - _rot(np.array([0, 1.05 * ry]), np.radians(roll))
            cv2.circle(img, p(top), int(0.32 * rx * self.sc), st.hair, -1, aa, _SHIFT)

    def eyes(self, img: np.ndarray, face: np.ndarray, roll: float, eye_open: float) -> None:
        """Eyes (open or shut), brows and nose of the face points (68, 2)."""
        cv2, st, aa = self.cv2, self.style, self.cv2.LINE_AA
        p, poly, ln, ax = self.p, self.poly, self.ln, self.ax
        for base_i in (36, 42):
            eye = face[base_i : base_i + 6]
            ec = eye.mean(axis=0)
            half_w = 0.5 * np.linalg.norm(eye[3] - eye[0])
            half_h = 0.5 * np.linalg.norm(0.5 * (eye[4] + eye[5]) - 0.5 * (eye[1] + eye[2])) / 0.94
            if eye_open > 0.5:
                cv2.ellipse(img, p(ec), ax(half_w, half_h), roll, 0, 360, (250, 250, 250), -1, aa, _SHIFT)
                cv2.circle(img, p(ec), int(0.75 * half_h * self.sc), st.iris, -1, aa, _SHIFT)
                cv2.circle(img, p(ec), int(0.35 * half_h * self.sc), (15, 15, 15), -1, aa, _SHIFT)
                cv2.ellipse(img, p(ec), ax(half_w, half_h), roll, 0, 360, (40, 30, 30), ln(0.005), aa, _SHIFT)
            else:
                cv2.line(img, p(eye[0]), p(eye[3]), (40, 30, 30), ln(0.008), aa, _SHIFT)
        for brow in (face[17:22], face[22:27]):
            cv2.polylines(img, [poly(brow)], False, _shade(st.hair, 0.8), ln(0.014), aa, _SHIFT)
        cv2.polylines(img, [poly(face[[28, 30, 33]])], False, _shade(st.skin, 0.65), ln(0.007), aa, _SHIFT)
        cv2.polylines(img, [poly(face[31:36])], False, _shade(st.skin, 0.65), ln(0.007), aa, _SHIFT)

    def mouth(self, img: np.ndarray, face: np.ndarray, roll: float, inside: tuple[int, int, int]) -> None:
        """Outer lips, then the open mouth (inner-lip ellipse; height = opening) filled with ``inside``."""
        cv2, p, ax, aa = self.cv2, self.p, self.ax, self.cv2.LINE_AA
        mc = 0.5 * (face[62] + face[66])
        o_hw, o_hh = 0.5 * np.linalg.norm(face[54] - face[48]), 0.5 * np.linalg.norm(face[57] - face[51])
        i_hw, i_hh = 0.5 * np.linalg.norm(face[64] - face[60]), 0.5 * np.linalg.norm(face[66] - face[62])
        cv2.ellipse(img, p(mc), ax(o_hw, o_hh), roll, 0, 360, self.style.lips, -1, aa, _SHIFT)
        if i_hh * self.cs > 0.4:
            cv2.ellipse(img, p(mc), ax(i_hw, i_hh), roll, 0, 360, inside, -1, aa, _SHIFT)
        else:
            cv2.line(img, p(face[60]), p(face[64]), (90, 30, 40), self.ln(0.006), aa, _SHIFT)


def render_frames(style: SpeakerStyle, motion: dict[str, Any], size: int = 128) -> np.ndarray:
    """Draw the cartoon for every frame of ``motion``: (T, size, size, 3) uint8 RGB."""
    ss = 2 if size < 256 else 1
    canvas = _Canvas(style, size * ss)
    base = canvas.base()
    kps_all = motion["keypoints"].astype(np.float64)
    frames = np.empty((len(kps_all), size, size, 3), np.uint8)
    for t, kps in enumerate(kps_all):
        img = base.copy()
        roll = float(np.degrees(motion["head_roll"][t]))
        face = kps[FACE_OFFSET : FACE_OFFSET + 68, :2]
        canvas.arms(img, kps)
        canvas.head(img, kps, motion["head_center"][t], roll)
        canvas.eyes(img, face, roll, motion["eye_open"][t])
        canvas.mouth(img, face, roll, tuple(int(round(c)) for c in motion["mouth_colour"][t]))
        frames[t] = (
            canvas.cv2.resize(img, (size, size), interpolation=canvas.cv2.INTER_AREA) if ss > 1 else img
        )
    return frames


__all__ = ["render_frames"]
