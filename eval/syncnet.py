"""SyncNet (joonson/syncnet_python, class ``S``) re-implemented in PyTorch, plus its scoring math.

Functional core (no network needed):

* :func:`mfcc_features`: ``python_speech_features.mfcc`` at 16 kHz on **int16 magnitudes** (13 x T_a, 100 Hz);
* :func:`num_windows`: ``min(n_frames, n_samples // 640) - 5`` five-frame windows (one fewer than possible,
  as the reference's ``lastframe``);
* :func:`lip_windows` / :func:`audio_windows`: window ``i`` = frames ``i .. i+4`` (BGR 0-255,
  N x 3 x 5 x 224 x 224) and MFCC columns ``4i .. 4i+19`` (N x 1 x 13 x 20);
* :func:`sync_scores`: distances over ``+-vshift`` offsets (``calc_pdist``),
  ``min_dist = min_j mean_i d_ij``, ``offset = vshift - argmin_j``,
  ``conf = median_j(mean_i d_ij) - min_dist`` (lower median, as ``torch.median``).

Sync-C is ``conf``, Sync-D is ``min_dist`` (metrics-reference.md §4). Sign convention: when the audio
leads the video by k frames (``a_t = v_{t+k}``) the offset is ``+k``.

Network: :class:`SyncNet` has the module names and Sequential indices of the original, so the original
``syncnet_v2.model`` (a torch-pickled name -> tensor mapping, without ``num_batches_tracked``) loads with
:func:`load_syncnet`. The weights are not redistributable (no licence stated): download them yourself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import python_speech_features
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmgt.schema import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

SYNCNET_FPS: int = 25
"""SyncNet works on 25 fps video only (640 audio samples and 4 MFCC columns per frame are hard-coded)."""
SYNCNET_SAMPLE_RATE: int = 16_000
SYNCNET_SAMPLES_PER_FRAME: int = SYNCNET_SAMPLE_RATE // SYNCNET_FPS  # 640
MFCC_PER_FRAME: int = 4
"""MFCC columns (10 ms hop) per 40 ms video frame."""
WINDOW_FRAMES: int = 5
"""Video frames per SyncNet window (0.2 s)."""
MFCC_WINDOW: int = WINDOW_FRAMES * MFCC_PER_FRAME  # 20
NUM_MFCC: int = 13
CROP_SIZE: int = 224
EMBED_DIM: int = 1024
DEFAULT_VSHIFT: int = 15
"""Offsets searched by ``demo_syncnet.py``, ``run_syncnet.py``, Wav2Lip (``calc_pdist``'s default: 10)."""
PDIST_EPS: float = 1e-6
"""``F.pairwise_distance`` eps (added to the difference before the norm)."""
SYNCNET_URL: str = "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model"
SYNCNET_FILE: str = "syncnet_v2.model"

assert (FPS, SAMPLE_RATE, SAMPLES_PER_FRAME) == (
    SYNCNET_FPS,
    SYNCNET_SAMPLE_RATE,
    SYNCNET_SAMPLES_PER_FRAME,
), "mmgt.schema time base differs from SyncNet's hard-coded 25 fps / 16 kHz"


# --------------------------------------------------------------------------- network
def _conv_bn_relu2d(cin: int, cout: int, **kw: Any) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, **kw), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _conv_bn_relu3d(cin: int, cout: int, **kw: Any) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, **kw), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]


def _fc_head(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    """SyncNet v2 (``SyncNetModel.S``): audio and lip towers mapping 0.2 s windows to ``embed_dim`` vectors.

    State-dict keys match the original: ``netcnnaud.*``, ``netfcaud.*``, ``netcnnlip.*``, ``netfclip.*``.
    Embeddings are not L2-normalised. BatchNorm always runs in eval mode (the network is only used frozen).
    """

    def __init__(self, embed_dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu2d(1, 64, kernel_size=3, stride=1, padding=1),  # 0-2
            nn.MaxPool2d(kernel_size=1, stride=1),  # 3 (no-op)
            *_conv_bn_relu2d(64, 192, kernel_size=3, stride=1, padding=1),  # 4-6
            nn.MaxPool2d(kernel_size=3, stride=(1, 2)),  # 7
            *_conv_bn_relu2d(192, 384, kernel_size=3, padding=1),  # 8-10
            *_conv_bn_relu2d(384, 256, kernel_size=3, padding=1),  # 11-13
            *_conv_bn_relu2d(256, 256, kernel_size=3, padding=1),  # 14-16
            nn.MaxPool2d(kernel_size=3, stride=2),  # 17
            nn.Conv2d(256, 512, kernel_size=(5, 4), padding=0),  # 18
            nn.BatchNorm2d(512),  # 19
            nn.ReLU(),  # 20
        )
        self.netfcaud = _fc_head(embed_dim)
        self.netfclip = _fc_head(embed_dim)
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0),  # 0-2
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),  # 3
            *_conv_bn_relu3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),  # 4-6
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),  # 7
            *_conv_bn_relu3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),  # 8-10
            *_conv_bn_relu3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),  # 11-13
            *_conv_bn_relu3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),  # 14-16
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),  # 17
            *_conv_bn_relu3d(256, 512, kernel_size=(1, 6, 6), padding=0),  # 18-20
        )
        self.eval()

    def train(self, mode: bool = True) -> SyncNet:
        """The network never leaves eval mode (BatchNorm running statistics are the model)."""
        return super().train(False)

    def forward_aud(self, x: Tensor) -> Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, embed_dim)."""
        if x.shape[1:] != (1, NUM_MFCC, MFCC_WINDOW):
            raise ValueError(f"audio windows must be (N, 1, {NUM_MFCC}, {MFCC_WINDOW}), got {tuple(x.shape)}")
        mid = self.netcnnaud(x)
        return self.netfcaud(mid.reshape(mid.shape[0], -1))

    def forward_lip(self, x: Tensor) -> Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 frame windows -> (N, embed_dim)."""
        if x.shape[1:] != (3, WINDOW_FRAMES, CROP_SIZE, CROP_SIZE):
            raise ValueError(
                f"lip windows must be (N, 3, {WINDOW_FRAMES}, {CROP_SIZE}, {CROP_SIZE}), got {tuple(x.shape)}"
            )
        mid = self.netcnnlip(x)
        return self.netfclip(mid.reshape(mid.shape[0], -1))

    def forward(self, lip: Tensor, aud: Tensor) -> tuple[Tensor, Tensor]:
        """Both towers: ((N, 3, 5, 224, 224), (N, 1, 13, 20)) -> ((N, D), (N, D))."""
        return self.forward_lip(lip), self.forward_aud(aud)


class SyncEmbedder(Protocol):
    """What the scoring pipeline needs from a network: the two towers (SyncNet or a test oracle)."""

    def forward_lip(self, x: Tensor) -> Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 frame windows -> (N, embed_dim) lip embeddings."""

    def forward_aud(self, x: Tensor) -> Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, embed_dim) audio embeddings."""


def syncnet_state_dict(model: SyncNet, *, with_num_batches_tracked: bool = False) -> OrderedDict[str, Tensor]:
    """The name -> tensor mapping laid out as ``syncnet_v2.model`` (no ``num_batches_tracked`` by default)."""
    return OrderedDict(
        (k, v.detach().clone().cpu())
        for k, v in model.state_dict().items()
        if with_num_batches_tracked or not k.endswith("num_batches_tracked")
    )


def save_syncnet_weights(model: SyncNet, path: str | Path) -> Path:
    """Write ``model`` in the original file format: ``torch.save`` of a name -> tensor mapping."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(syncnet_state_dict(model), p)
    return p


def load_syncnet(path: str | Path, device: str | torch.device = "cpu") -> SyncNet:
    """Load ``syncnet_v2.model`` (or a :func:`save_syncnet_weights` file) into an eval-mode SyncNet.

    Like ``SyncNetInstance.loadParameters`` the file is a name -> tensor mapping copied entry by entry;
    every parameter and BatchNorm statistic must be present (``num_batches_tracked`` may be absent);
    unknown names and shape mismatches are errors. Loaded with ``weights_only=True`` (no arbitrary pickles).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: SyncNet weights not found. Download {SYNCNET_FILE} from {SYNCNET_URL} "
            f"(no licence stated: not redistributed) and put it at this path (or pass weights_path=...)."
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad file
        raise ValueError(
            f"{p}: not a torch-pickled SyncNet weight file ({type(err).__name__}: {err})"
        ) from err
    if isinstance(state, nn.Module):  # pragma: no cover - weights_only forbids modules; kept for clarity
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise ValueError(f"{p}: expected a name -> tensor mapping, got {type(state).__name__}")
    model = SyncNet()
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ValueError(f"{p}: {len(unknown)} names unknown to SyncNet, e.g. {unknown[:5]}")
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    if missing:
        raise ValueError(f"{p}: {len(missing)} SyncNet tensors missing, e.g. {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            if not isinstance(value, Tensor) or value.shape != own[name].shape:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"{p}: {name} has shape {shape}, SyncNet expects {tuple(own[name].shape)}")
            own[name].copy_(value)
    return model.to(device).eval()


# --------------------------------------------------------------------------- features and windows
def audio_to_int16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 as a ``pcm_s16le`` WAV would hold it (x * 32768, rounded, clipped).

    Integer input is returned as int16 unchanged. SyncNet's MFCC is computed on these raw magnitudes.
    """
    a = np.asarray(audio)
    if a.ndim != 1:
        raise ValueError(f"audio must be mono (N,), got shape {a.shape}")
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int16)
    return np.clip(np.round(a.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def mfcc_features(audio_int16: np.ndarray, sample_rate: int = SYNCNET_SAMPLE_RATE) -> np.ndarray:
    """``python_speech_features.mfcc`` with its defaults (25 ms / 10 ms, 13 coeffs, c0 = log energy).

    (N,) int16 (or raw int16 magnitudes as float) -> (13, 1 + ceil((N - 400) / 160)) float32, as the reference
    transposes it. Pass int16, not audio scaled to [-1, 1]: scaling changes c0 by 2 ln 32768.
    """
    if sample_rate != SYNCNET_SAMPLE_RATE:
        raise ValueError(
            f"SyncNet needs {SYNCNET_SAMPLE_RATE} Hz audio, got {sample_rate} Hz (resample first)"
        )
    a = np.asarray(audio_int16)
    if a.ndim != 1:
        raise ValueError(f"audio must be mono (N,), got shape {a.shape}")
    return python_speech_features.mfcc(a, sample_rate).T.astype(np.float32)


def num_windows(n_frames: int, n_samples: int) -> int:
    """Number of 5-frame windows the reference scores: ``min(n_frames, n_samples // 640) - 5`` (>= 0)."""
    return max(0, min(int(n_frames), int(n_samples) // SYNCNET_SAMPLES_PER_FRAME) - WINDOW_FRAMES)


def lip_windows(crops_rgb: np.ndarray, start: int, stop: int) -> Tensor:
    """Windows ``start .. stop-1`` of (T, 224, 224, 3) uint8 RGB -> (N, 3, 5, 224, 224) float32 BGR 0-255.

    Window i holds frames i .. i+4 (the reference's ``imtv[:, :, i:i+5]``); built in one pass over memory.
    """
    seg = np.asarray(crops_rgb)[start : stop + WINDOW_FRAMES - 1]
    win = np.lib.stride_tricks.sliding_window_view(seg, WINDOW_FRAMES, axis=0)  # (N, H, W, 3, 5) view
    out = np.empty((len(win), 3, WINDOW_FRAMES, *seg.shape[1:3]), dtype=np.float32)
    out[...] = win[..., ::-1, :].transpose(0, 3, 4, 1, 2)  # RGB -> BGR, uint8 -> float32
    return torch.from_numpy(out)


def audio_windows(mfcc: Tensor, start: int, stop: int) -> Tensor:
    """Windows ``start .. stop-1`` of a (13, T_a) MFCC -> (N, 1, 13, 20) (columns 4i .. 4i+19)."""
    return torch.stack(
        [mfcc[None, :, MFCC_PER_FRAME * i : MFCC_PER_FRAME * i + MFCC_WINDOW] for i in range(start, stop)]
    )


def crops_to_tensor(crops_rgb: np.ndarray) -> Tensor:
    """(T, 224, 224, 3) uint8 RGB -> (3, T, 224, 224) float32 BGR 0-255 (as ``cv2.imread``; unnormalised)."""
    c = np.asarray(crops_rgb)
    if c.ndim != 4 or c.shape[1:] != (CROP_SIZE, CROP_SIZE, 3) or c.dtype != np.uint8:
        raise ValueError(f"crops must be (T, {CROP_SIZE}, {CROP_SIZE}, 3) uint8 RGB, got {c.shape} {c.dtype}")
    bgr = np.ascontiguousarray(c[..., ::-1].transpose(3, 0, 1, 2))
    return torch.from_numpy(bgr).float()


@torch.inference_mode()
def embed_windows(
    net: SyncEmbedder,
    crops_rgb: np.ndarray,
    audio_int16: np.ndarray,
    batch_size: int = 20,
    device: str | torch.device = "cpu",
) -> tuple[Tensor, Tensor]:
    """Lip and audio embeddings of every scored window (``SyncNetInstance.evaluate``'s loop).

    crops_rgb (T, 224, 224, 3) uint8 at 25 fps, audio_int16 (N,) at 16 kHz, aligned at frame 0
    -> (video_emb (W, D), audio_emb (W, D)) float32 on CPU, W = :func:`num_windows`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = num_windows(len(crops_rgb), len(audio_int16))
    if n <= 0:
        raise ValueError(
            f"too short for SyncNet: {len(crops_rgb)} frames / {len(audio_int16)} samples give no window"
        )
    crops_to_tensor(crops_rgb[:1])  # validates shape and dtype
    mfcc = torch.from_numpy(mfcc_features(audio_int16))
    v_out: list[Tensor] = []
    a_out: list[Tensor] = []
    for i in range(0, n, batch_size):
        j = min(n, i + batch_size)
        v_out.append(net.forward_lip(lip_windows(crops_rgb, i, j).to(device)).float().cpu())
        a_out.append(net.forward_aud(audio_windows(mfcc, i, j).to(device)).float().cpu())
    return torch.cat(v_out), torch.cat(a_out)


# --------------------------------------------------------------------------- scores
def calc_pdist(video_emb: Tensor, audio_emb: Tensor, vshift: int = DEFAULT_VSHIFT) -> Tensor:
    """``d[i, j] = ||v_i - a_{i+j-vshift} + 1e-6||``, audio zero-padded: (W, D) x 2 -> (W, 2 vshift + 1)."""
    win = 2 * vshift + 1
    padded = F.pad(audio_emb, (0, 0, vshift, vshift))
    idx = torch.arange(len(video_emb))[:, None] + torch.arange(win)[None, :]  # (W, win)
    return F.pairwise_distance(
        video_emb[:, None, :].expand(-1, win, -1).reshape(-1, video_emb.shape[1]),
        padded[idx].reshape(-1, audio_emb.shape[1]),
        eps=PDIST_EPS,
    ).reshape(len(video_emb), win)


def sync_scores(
    video_emb: Tensor | np.ndarray, audio_emb: Tensor | np.ndarray, vshift: int = DEFAULT_VSHIFT
) -> dict:
    """SyncNet post-processing of (W, D) lip and audio embeddings of the same windows.

    Returns ``offset`` (int, frames, in [-vshift, vshift]), ``min_dist`` (Sync-D), ``conf`` (Sync-C: median
    minus min of the window-averaged distances, lower median), ``dists`` (W, 2 vshift + 1) per-window
    distances and ``mean_dists`` (2 vshift + 1,). Computed in float32 with torch like the reference.
    """
    v = torch.as_tensor(video_emb, dtype=torch.float32)
    a = torch.as_tensor(audio_emb, dtype=torch.float32)
    if v.ndim != 2 or a.ndim != 2 or v.shape != a.shape:
        raise ValueError(
            f"embeddings must be two (W, D) arrays of equal shape, got {tuple(v.shape)}, {tuple(a.shape)}"
        )
    if len(v) == 0:
        raise ValueError("no windows to score")
    if vshift < 0:
        raise ValueError(f"vshift must be >= 0, got {vshift}")
    dists = calc_pdist(v, a, vshift)
    mdist = dists.t().contiguous().mean(1)  # (win, W) layout and reduction of the reference: same rounding
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval
    return {
        "offset": int(vshift - int(minidx)),
        "min_dist": float(minval),
        "conf": float(conf),
        "dists": dists.numpy(),
        "mean_dists": mdist.numpy(),
    }


def score_crops(
    net: SyncEmbedder,
    crops_rgb: np.ndarray,
    audio: np.ndarray,
    vshift: int = DEFAULT_VSHIFT,
    batch_size: int = 20,
    device: str | torch.device = "cpu",
) -> dict:
    """Score one face track: (T, 224, 224, 3) uint8 crops at 25 fps and the audio of the same span.

    ``audio`` is (N,) 16 kHz, float in [-1, 1] (converted with :func:`audio_to_int16`) or int16. Returns the
    :func:`sync_scores` dict plus ``n_windows``.
    """
    pcm = audio_to_int16(audio)
    v, a = embed_windows(net, crops_rgb, pcm, batch_size=batch_size, device=device)
    out = sync_scores(v, a, vshift)
    out["n_windows"] = len(v)
    return out


__all__ = [
    "CROP_SIZE",
    "DEFAULT_VSHIFT",
    "EMBED_DIM",
    "SYNCNET_FILE",
    "SYNCNET_FPS",
    "SYNCNET_SAMPLE_RATE",
    "SYNCNET_URL",
    "SyncEmbedder",
    "SyncNet",
    "audio_to_int16",
    "audio_windows",
    "calc_pdist",
    "crops_to_tensor",
    "embed_windows",
    "lip_windows",
    "load_syncnet",
    "mfcc_features",
    "num_windows",
    "save_syncnet_weights",
    "score_crops",
    "sync_scores",
    "syncnet_state_dict",
]
