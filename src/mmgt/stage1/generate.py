"""Any-length Stage I generation: audio features + a reference pose -> a keypoint sequence.

Consecutive windows of ``window`` frames cover the whole audio (the first window is generated, the
tail is padded and trimmed, never dropped). Each window is conditioned on the last generated frame of
the previous one (the reference pose for the first). With ``best_of > 1`` several candidates are
sampled per window and the one whose first frame is closest to the conditioning pose is kept
(continuity selection). Finally every window boundary is smoothed over ``seam`` frames on each side.
"""

from __future__ import annotations

import numpy as np
import torch

from mmgt.schema import VISIBILITY_THRESHOLD
from mmgt.stage1.diffusion import PoseDiffusion
from mmgt.stage1.network import SMGATransformer


def smooth_seams(kps: np.ndarray, boundaries: list[int], seam: int) -> np.ndarray:
    """Replace x, y within ``seam`` frames of each boundary by a centred moving average.

    Args:
        kps: (T, 134, 3) stored keypoints.
        boundaries: frame indices where a new window starts.
        seam: half-width in frames (0 = off).
    """
    if seam <= 0 or not boundaries:
        return kps
    out = kps.copy()
    t = len(kps)
    for b in boundaries:
        for f in range(max(b - seam, 0), min(b + seam, t)):
            lo, hi = max(f - seam, 0), min(f + seam + 1, t)
            out[f, :, :2] = kps[lo:hi, :, :2].mean(axis=0)
    return out


@torch.no_grad()
def generate_pose_sequence(
    net: SMGATransformer,
    diffusion: PoseDiffusion,
    audio_features: np.ndarray,
    ref_pose: np.ndarray,
    n_frames: int | None = None,
    *,
    steps: int,
    guidance: float,
    eta: float,
    window: int = 80,
    best_of: int = 1,
    seam: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Generate keypoints for the whole audio.

    Args:
        net: the (standardising) SMGA network, in eval mode.
        diffusion: its noise schedule.
        audio_features: (T_a, D) or (T_a, ...) features at 25 fps.
        ref_pose: (134, 3) stored keypoints of the reference (x, y in [0, 1], confidence).
        n_frames: output length (default: the feature length).
        steps: DDIM steps (an export's defaults: :meth:`mmgt.stage1.export.Stage1Export.sampling`;
            :class:`~mmgt.stage1.export.PosePipeline` passes them).
        guidance: classifier-free guidance weight.
        eta: DDIM eta.
        window: frames generated per window.
        best_of: candidates per window for continuity selection.
        seam: frames blended where two windows meet.
        seed: seed of the noise.

    Returns:
        (n_frames, 134, 3) float32 stored keypoints.
    """
    device = next(net.parameters()).device
    feats = np.asarray(audio_features, np.float32).reshape(len(audio_features), -1)
    total = n_frames or len(feats)
    n_windows = max(1, -(-total // window))
    padded = np.zeros((n_windows * window, feats.shape[1]), np.float32)
    padded[: min(len(feats), len(padded))] = feats[: len(padded)]
    if len(feats) < len(padded):  # edge-pad the audio of the tail window (then trimmed)
        padded[len(feats) :] = feats[-1] if len(feats) else 0.0
    gen = torch.Generator(device=device).manual_seed(seed)
    # the network's pose layout: model space (134, 3), or the original's 402-d vector (reference models)
    cond = torch.from_numpy(np.ascontiguousarray(net.to_layout(np.asarray(ref_pose, np.float32)))).to(device)

    pieces = []
    for w in range(n_windows):
        audio = torch.from_numpy(padded[w * window : (w + 1) * window]).to(device)
        audio = audio.unsqueeze(0).expand(best_of, -1, -1)
        cands = diffusion.sample(
            net,
            audio,
            cond.unsqueeze(0).expand(best_of, *cond.shape),
            steps=steps,
            guidance=guidance,
            eta=eta,
            generator=gen,
        )
        if best_of > 1:  # compared in model space
            prev, first = net.to_model_space(cond), net.to_model_space(cands[:, 0])
            vis = (prev[:, 2] > 0.5).float()
            gap = (((first[:, :, :2] - prev[None, :, :2]) ** 2).sum(-1) * vis).sum(-1)
            best = cands[int(gap.argmin())]
        else:
            best = cands[0]
        pieces.append(best)
        cond = best[-1]
    seq = net.from_layout(torch.cat(pieces).float().cpu()).numpy()[:total]
    seq[..., 2] = (seq[..., 2] >= VISIBILITY_THRESHOLD).astype(np.float32)
    boundaries = [w * window for w in range(1, n_windows) if w * window < total]
    return smooth_seams(seq, boundaries, seam).astype(np.float32)
