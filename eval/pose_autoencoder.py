"""The pose autoencoder whose latent space FGD (and Diversity ``latent_l1``) is measured in.

A Conv1d autoencoder over keypoint windows (:func:`pose_windows`, model-space x, y) that the project trains
on dataset keypoints (:func:`train_pose_autoencoder`; ``mmgt-weights train-fgd``): no public encoder exists
for 2-D DWPose keypoints. Checkpoints are a torch state dict plus a JSON sidecar with the format tag, the
architecture and keypoint config and the state file's sha256 (:func:`save_pose_autoencoder`,
:func:`load_pose_autoencoder`). The metrics that use it: :mod:`mmgt_eval.metrics.fgd`,
:mod:`mmgt_eval.metrics.diversity`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmgt import schema as S
from mmgt.digest import sha256_file
from mmgt.untrusted import load_npy
from mmgt_eval.metrics.base import MetricInputError
from mmgt_eval.metrics.keypoints import _check_keypoints, joint_indices

__all__ = [
    "AE_FORMAT",
    "PoseAutoencoder",
    "PoseAutoencoderError",
    "encode_windows",
    "load_keypoint_files",
    "load_pose_autoencoder",
    "pose_windows",
    "reconstruction_loss",
    "save_pose_autoencoder",
    "train_pose_autoencoder",
]

AE_FORMAT = "mmgt-pose-autoencoder/1"


class PoseAutoencoderError(RuntimeError):
    """A pose-autoencoder checkpoint is missing, corrupt or does not match its config."""


def pose_windows(
    keypoints: Any,
    window: int,
    stride: int | None = None,
    joints: str | Sequence[int] = "upper_body_hands",
    source: str = "keypoints",
) -> np.ndarray:
    """Windows (N, window, 2 J) float32 of model-space x, y (``mmgt.schema.to_model_space``; invisible = 0).

    Windows start at 0, stride, 2 stride, ... (``stride`` defaults to ``window``: non-overlapping); the
    remainder shorter than a window is dropped. A clip shorter than ``window`` gives (0, window, 2 J).
    """
    kps = _check_keypoints(keypoints, source)
    xy = S.to_model_space(kps)[:, list(joint_indices(joints)), :2].reshape(kps.shape[0], -1)
    stride = stride or window
    starts = range(0, kps.shape[0] - window + 1, stride)
    if len(starts) == 0:
        return np.zeros((0, window, xy.shape[1]), dtype=np.float32)
    return np.stack([xy[s : s + window] for s in starts]).astype(np.float32)


def load_keypoint_files(root: str | os.PathLike, pattern: str = "**/keypoints.npy") -> list[np.ndarray]:
    """All keypoint arrays (T, 134, 3) matching ``pattern`` under ``root`` (sorted by path)."""
    paths = sorted(Path(root).glob(pattern))
    if not paths:
        raise FileNotFoundError(f"{root}: no files match {pattern!r}")
    out = []
    for p in paths:
        kps = load_npy(p, "keypoints (T, 134, 3)")
        S.validate_keypoints(kps, source=str(p))
        out.append(kps.astype(np.float32))
    return out


class PoseAutoencoder(nn.Module):
    """Conv1d autoencoder over keypoint windows (B, T, D) -> latent (B, latent_dim) -> (B, T, D).

    Encoder: conv3 -> 2 strided conv4 (T / 4) -> linear; decoder mirrors it with transposed convolutions.
    Inputs are standardised with per-dimension ``mean`` / ``std`` buffers set from the training windows.
    ``window`` must be divisible by 4. No batch norm (outputs do not depend on batch statistics).
    """

    def __init__(self, in_dim: int, window: int = 32, hidden: int = 64, latent_dim: int = 32) -> None:
        super().__init__()
        if window % 4:
            raise ValueError(f"window must be divisible by 4, got {window}")
        self.config = {"in_dim": in_dim, "window": window, "hidden": hidden, "latent_dim": latent_dim}
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        t4 = window // 4
        act = nn.LeakyReLU(0.2)
        self.encoder = nn.Sequential(
            nn.Conv1d(in_dim, hidden, 3, padding=1),
            act,
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.Flatten(),
            nn.Linear(hidden * t4, latent_dim),
        )
        self.decoder_fc = nn.Linear(latent_dim, hidden * t4)
        self.decoder = nn.Sequential(
            act,
            nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.ConvTranspose1d(hidden, hidden, 4, stride=2, padding=1),
            act,
            nn.Conv1d(hidden, in_dim, 3, padding=1),
        )

    def normalize(self, x: Tensor) -> Tensor:
        """(B, T, D) -> standardised (B, T, D)."""
        return (x - self.mean) / self.std

    def encode(self, x: Tensor) -> Tensor:
        """Windows (B, T, D) -> latents (B, latent_dim)."""
        self._check(x)
        return self.encoder(self.normalize(x).transpose(1, 2))

    def decode_normalized(self, z: Tensor) -> Tensor:
        """Latents (B, latent_dim) -> standardised windows (B, T, D)."""
        h = self.decoder_fc(z).view(z.shape[0], self.config["hidden"], self.config["window"] // 4)
        return self.decoder(h).transpose(1, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, D) -> (reconstruction (B, T, D) in input units, latent (B, latent_dim))."""
        z = self.encode(x)
        return self.decode_normalized(z) * self.std + self.mean, z

    def _check(self, x: Tensor) -> None:
        want = (self.config["window"], self.config["in_dim"])
        if x.ndim != 3 or tuple(x.shape[1:]) != want:
            raise MetricInputError(
                f"pose autoencoder expects windows (B, {want[0]}, {want[1]}), got {tuple(x.shape)}"
            )


def _ae_loss(model: PoseAutoencoder, x: Tensor, velocity_weight: float) -> Tensor:
    """L1 reconstruction + ``velocity_weight`` x L1 of frame differences, in standardised units (HA2G)."""
    target = model.normalize(x)
    recon = model.decode_normalized(model.encode(x))
    loss = (recon - target).abs().mean()
    if velocity_weight:
        loss = (
            loss
            + velocity_weight
            * ((recon[:, 1:] - recon[:, :-1]) - (target[:, 1:] - target[:, :-1])).abs().mean()
        )
    return loss


@torch.no_grad()
def reconstruction_loss(model: PoseAutoencoder, windows: Any, velocity_weight: float = 1.0) -> float:
    """The training loss of ``model`` on ``windows`` (N, T, D) (standardised L1 + velocity L1)."""
    model.eval()
    return float(_ae_loss(model, torch.as_tensor(np.asarray(windows), dtype=torch.float32), velocity_weight))


def train_pose_autoencoder(
    windows: Any,
    epochs: int = 50,
    batch_size: int = 64,
    lr: float = 1e-3,
    hidden: int = 64,
    latent_dim: int = 32,
    velocity_weight: float = 1.0,
    seed: int = 0,
    max_seconds: float | None = None,
    joints: str | Sequence[int] = "upper_body_hands",
    fps: float = S.FPS,
) -> tuple[PoseAutoencoder, dict[str, Any]]:
    """Train a :class:`PoseAutoencoder` on windows (N, T, D) from :func:`pose_windows` (plain torch, CPU).

    Adam, shuffled mini-batches, loss :func:`reconstruction_loss`. ``mean`` / ``std`` buffers come from the
    training windows (std of a constant dimension is set to 1). ``joints`` and ``fps`` are recorded in the
    model config (they must match how the windows were made). Stops early after ``max_seconds``. Returns the
    model (eval mode) and a history ``{"loss": [per-epoch mean], "initial_loss", "final_loss", ...}``.
    """
    x = torch.as_tensor(np.asarray(windows), dtype=torch.float32)
    if x.ndim != 3 or x.shape[0] < 2:
        raise MetricInputError(f"need at least 2 training windows (N, T, D), got shape {tuple(x.shape)}")
    torch.manual_seed(seed)
    model = PoseAutoencoder(x.shape[2], x.shape[1], hidden, latent_dim)
    model.config.update({"joints": list(joint_indices(joints)), "fps": float(fps)})
    flat = x.reshape(-1, x.shape[2])
    std = flat.std(dim=0)
    model.mean.copy_(flat.mean(dim=0))
    model.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
    initial = reconstruction_loss(model, x, velocity_weight)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    history: list[float] = []
    start = time.monotonic()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(x.shape[0], generator=gen)
        total, count = 0.0, 0
        for i in range(0, x.shape[0], batch_size):
            batch = x[perm[i : i + batch_size]]
            loss = _ae_loss(model, batch, velocity_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * batch.shape[0]
            count += batch.shape[0]
        history.append(total / count)
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            break
    model.eval()
    final = reconstruction_loss(model, x, velocity_weight)
    info = {
        "loss": history,
        "initial_loss": initial,
        "final_loss": final,
        "epochs": len(history),
        "n_windows": int(x.shape[0]),
        "seed": seed,
        "lr": lr,
        "batch_size": batch_size,
        "velocity_weight": velocity_weight,
        "seconds": time.monotonic() - start,
    }
    return model, info


def save_pose_autoencoder(
    model: PoseAutoencoder, path: str | os.PathLike, training: dict[str, Any] | None = None
) -> Path:
    """Write ``path`` (torch state dict, e.g. ``fgd_autoencoder.pt``) and ``path.with_suffix('.json')``.

    The JSON holds the format tag, the architecture and keypoint config (``in_dim``, ``window``, ``hidden``,
    ``latent_dim``, ``joints``, ``fps``, coordinate space), the state file's name and sha256, and an optional
    training summary. Returns the state-dict path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    meta = {
        "format": AE_FORMAT,
        **model.config,
        "coordinates": "model space x, y in [-1, 1] (mmgt.schema.to_model_space), invisible points = 0",
        "state_file": path.name,
        "sha256": sha256_file(path),
        "training": {k: v for k, v in (training or {}).items() if k != "loss"},
    }
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_pose_autoencoder(path: str | os.PathLike) -> tuple[PoseAutoencoder, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_pose_autoencoder` (give the ``.pt`` or the ``.json``).

    Checks the sidecar JSON exists, the format tag, and the state file's sha256; raises
    :class:`PoseAutoencoderError` naming the file otherwise. Returns (model in eval mode, config dict).
    """
    p = Path(path)
    pt, meta_path = (p.with_suffix(".pt"), p) if p.suffix == ".json" else (p, p.with_suffix(".json"))
    if not pt.is_file():
        raise PoseAutoencoderError(
            f"{pt}: FGD pose-autoencoder checkpoint not found; train one on your dataset's keypoints "
            "(mmgt_eval.pose_autoencoder.train_pose_autoencoder + save_pose_autoencoder) and pass its path"
        )
    if not meta_path.is_file():
        raise PoseAutoencoderError(f"{meta_path}: config JSON of pose autoencoder {pt.name} is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise PoseAutoencoderError(f"{meta_path}: not valid JSON ({err})") from err
    if meta.get("format") != AE_FORMAT:
        raise PoseAutoencoderError(f"{meta_path}: format {meta.get('format')!r}, expected {AE_FORMAT!r}")
    digest = sha256_file(pt)
    if digest != meta.get("sha256"):
        raise PoseAutoencoderError(
            f"{pt}: sha256 {digest} differs from {meta.get('sha256')} recorded in {meta_path.name}"
        )
    model = PoseAutoencoder(meta["in_dim"], meta["window"], meta["hidden"], meta["latent_dim"])
    model.config.update({"joints": meta["joints"], "fps": meta["fps"]})
    try:
        model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
    except (RuntimeError, KeyError) as err:
        raise PoseAutoencoderError(f"{pt}: state dict does not match its config ({err})") from err
    model.eval()
    return model, meta


@torch.no_grad()
def encode_windows(model: PoseAutoencoder, windows: Any, batch_size: int = 256) -> np.ndarray:
    """Encoder latents (N, latent_dim) float64 of windows (N, T, D)."""
    model.eval()
    x = torch.as_tensor(np.asarray(windows), dtype=torch.float32)
    dev = next(model.parameters()).device
    out = [
        model.encode(x[i : i + batch_size].to(dev)).double().cpu() for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, model.config["latent_dim"]))
