"""``Stage2Pipeline``: reference image + poses (+ audio) -> video frames, any length.

Usage::

    pipe = Stage2Pipeline.from_pretrained("<run>/export")          # a Stage II export
    frames = pipe(ref_image, keypoints, audio=audio)               # (T, S, S, 3) uint8

Inputs: ``ref_image`` (H, W, 3) uint8 RGB (centre-cropped to a square and resized to the trained size S);
``keypoints`` (T, 134, 3) stored layout (x, y in [0, 1]) - one pose per output frame, rendered to the pose
video and turned into motion masks; ``audio`` (N,) float32 16 kHz (features computed with the export's
extractor) or ``audio_features`` (T, ...) precomputed at 25 fps; ``ref_keypoints`` (134, 3) for the
static-mask ablation (default: the first pose).

Sampling (fixing the original's limits):

* DDIM on the training schedule (v-prediction, zero-SNR rescale, trailing timesteps - one schedule for
  training and inference);
* the ReferenceNet runs once (t = 0); PoseGuider features, audio tokens and motion masks are computed once
  for all frames and sliced per window (``pose_cache="cpu"`` keeps the PoseGuider features - at SD scale
  2.6 MB per frame in fp16, the only large per-frame tensor - in host memory, ``"none"`` recomputes them per
  window and step: device memory then independent of the length);
* any length: context windows of ``context_frames`` with ``context_overlap`` (:func:`context_windows`; no
  wrap-around unless ``closed_loop``), noise predictions of overlapping windows averaged at every step,
  ``context_batch`` windows per UNet call;
* batched classifier-free guidance: the unconditional half has no reference attention, zero image
  embedding and zero audio tokens (one guidance scale, as the original); ``guidance_scale = 1`` skips it;
* VAE decoding in slices of ``decode_chunk`` frames; a tqdm bar over the denoising steps;
* speed levers (:mod:`mmgt.stage2.speed`, generation options with the plain behaviour as default):
  ``scheduler``, ``cfg_mode``, ``channels_last``, ``sdpa_backend``, ``compile`` / ``compile_mode`` /
  ``compile_backend`` / ``compile_fullgraph``, ``vae_slicing`` / ``vae_tiling``; the precision is the
  constructor's ``dtype`` (networks and their inputs in it, the latents and the scheduler's arithmetic in
  fp32).

``last_stats`` reports the UNet-frame evaluations per output frame (steps x CFG x window coverage), the
scheduler and the CFG mode.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmgt.stage2.attention import RegionMasks, Stage2AttentionContext, mask_regions_of
from mmgt.stage2.components import (
    Stage2Components,
    audio_windows,
    decode_latents,
    encode_frames,
    image_embeddings,
    pose_to_tensor,
    tensor_to_frames,
)
from mmgt.stage2.export import DEFAULT_INFERENCE, Stage2Export
from mmgt.stage2.guidance import MaskGuidance
from mmgt.stage2.speed import (
    CFG_MODES,
    SLICEABLE,
    configure_vae,
    make_scheduler,
    memory_format,
    resolve_dtype,
    sdpa_context,
    set_memory_format,
)

log = logging.getLogger(__name__)

POSE_CACHES: tuple[str, ...] = ("device", "cpu", "none")
"""Where the per-frame PoseGuider features live: computed once on the device (default; memory O(T)),
once in host memory (device memory O(window), host O(T)), or recomputed per window and step (O(window))."""


def context_windows(n_frames: int, size: int, overlap: int, closed_loop: bool = False) -> list[list[int]]:
    """Frame indices of the context windows covering ``n_frames``.

    Windows of ``size`` frames start every ``size - overlap`` frames. Without ``closed_loop`` the last window
    is aligned to the end (every window has ``size`` frames, none wraps round); with it, windows start at
    0, stride, ... < n_frames and wrap round to the start (the original's "uniform" scheduler, which blends
    the end of a video with its beginning). Clips of at most ``size`` frames are one window.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got size={size}, overlap={overlap}")
    if n_frames <= size:
        return [list(range(n_frames))]
    stride = size - overlap
    if closed_loop:
        return [[(s + i) % n_frames for i in range(size)] for s in range(0, n_frames, stride)]
    starts = list(range(0, n_frames - size + 1, stride))
    if starts[-1] != n_frames - size:
        starts.append(n_frames - size)
    return [list(range(s, s + size)) for s in starts]


def square_image(image: np.ndarray, size: int) -> Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, size, size) in [-1, 1]: centre crop to a square, area/bilinear resize."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
        raise ValueError(f"reference image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = torch.from_numpy(np.ascontiguousarray(img[top : top + side, left : left + side])).permute(2, 0, 1)
    x = x[None].float() / 127.5 - 1.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


DECODE_CHUNK = 8
"""Latent frames decoded by the VAE at a time (memory: one chunk of full-size frames)."""


@dataclass
class _Conditions:
    """The per-clip inputs of :meth:`Stage2Pipeline.denoise`, computed once (T frames, latents h x w)."""

    embeds: Tensor  # (1, 1, D) CLIP image embedding
    states: dict[str, Tensor]  # reference states, module path -> (1, L, C)
    keypoints: Tensor  # (T, 134, 3) stored layout
    latent_size: tuple[int, int]  # (h, w)
    pose: Tensor | None = None  # (C0, T, h, w) PoseGuider features, or None (recomputed per window)
    tokens: Tensor | None = None  # (T, N, C) audio tokens, or None (no audio)
    masks: RegionMasks | None = None  # (T, R, h_l, w_l) per level
    branch_regions: tuple[str, ...] | None = None
    branch_weights: tuple[float, ...] | None = None


@dataclass
class _WindowInputs:
    """The denoiser inputs of nw context windows (the conditional half of CFG unless built otherwise)."""

    latents: Tensor  # (nw, C, F, h, w)
    pose: Tensor  # (nw, C0, F, h, w)
    embeds: Tensor  # (nw, 1, D)
    states: dict[str, Tensor]  # module path -> (nw, L, C)
    keep: tuple[bool, ...]  # per window: attend to the reference (plain Python: decided before the forward)
    tokens: Tensor | None  # (nw * F, N, C)
    masks: RegionMasks | None  # nw * F rows

    def unconditional(self) -> _WindowInputs:
        """CFG's unconditional inputs: no reference attention, zero image embedding, zero audio tokens."""
        return dataclasses.replace(
            self,
            embeds=torch.zeros_like(self.embeds),
            keep=(False,) * len(self.keep),
            tokens=None if self.tokens is None else torch.zeros_like(self.tokens),
        )

    def with_unconditional(self) -> _WindowInputs:
        """One batch of 2 nw: the unconditional half, then these inputs (the halves share the masks)."""
        u = self.unconditional()
        return _WindowInputs(
            latents=torch.cat([u.latents, self.latents]),
            pose=torch.cat([u.pose, self.pose]),
            embeds=torch.cat([u.embeds, self.embeds]),
            states={k: torch.cat([v, v]) for k, v in self.states.items()},
            keep=u.keep + self.keep,
            tokens=None if self.tokens is None else torch.cat([u.tokens, self.tokens]),
            masks=None if self.masks is None else self.masks.repeat(2),
        )

    def predict(self, denoiser: Any, t: Tensor, cond: _Conditions) -> Tensor:
        """The denoiser's output (B, C, F, h, w) for these inputs at timestep ``t``."""
        context = Stage2AttentionContext(
            reference_states=self.states,
            reference_keep=None if all(self.keep) else torch.tensor(self.keep, device=self.latents.device),
            audio_tokens=self.tokens,
            region_masks=self.masks,
            branch_regions=cond.branch_regions,
            branch_weights=cond.branch_weights,
        )
        return denoiser(self.latents, t, self.embeds, self.pose, context)


class Stage2Pipeline:
    """Stage II generation from a component set and its metadata (see the module docstring).

    Args:
        components: the six networks.
        export: the export metadata (:class:`~mmgt.stage2.export.Stage2Export`, ``mmgt_stage2.json``).
        device: where to run (default: the components' device).
        dtype: the networks' precision, ``"fp32"`` | ``"fp16"`` | ``"bf16"`` or a torch dtype (None: keep
            the components' own); their inputs are cast to it, the latents stay fp32.
    """

    def __init__(
        self,
        components: Stage2Components,
        export: Stage2Export,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        self.components = components
        self.export = export
        self.device = torch.device(device) if device else next(components.parameters()).device
        wanted = resolve_dtype(dtype)
        self.components.to(self.device, dtype=wanted)
        self.dtype: torch.dtype = wanted or next(components.denoiser.parameters()).dtype
        self.guidance: MaskGuidance = export.guidance()
        self.last_stats: dict[str, Any] = {}
        self._extractor: Any = None
        self._compiled: dict[tuple[str | None, str, bool], Any] = {}  # (mode, backend, fullgraph) -> denoiser
        self._channels_last = False  # the memory format set by the last denoise

    @classmethod
    def from_pretrained(
        cls, export_dir: str | Path, device: str = "cpu", dtype: str | torch.dtype | None = None
    ) -> Stage2Pipeline:
        """Load a Stage II export folder (``<run>/export`` of ``mmgt-train``), networks in ``dtype``."""
        return cls(*Stage2Export.load(export_dir, device), device, dtype)

    # ------------------------------------------------------------------ facts
    @property
    def size(self) -> int:
        """Frame side S in pixels (frames are S x S): the export's training size."""
        return self.export.size

    @property
    def use_audio(self) -> bool:
        """Whether the denoiser gets audio tokens: the export's decision (made once, in training)."""
        return self.export.use_audio

    @property
    def inference(self) -> dict[str, Any]:
        """The export's generation settings (:data:`~mmgt.stage2.export.DEFAULT_INFERENCE` + its own)."""
        return self.export.inference

    def audio_features(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """(N,) float32 16 kHz audio -> (n_frames, ...) features with the export's extractor."""
        if self._extractor is None:
            from mmgt.audio import extractor_from_node

            self._extractor = extractor_from_node(
                self.export.audio_features, "mmgt_stage2.json: audio_features"
            )
        return self._extractor(audio, n_frames=n_frames)

    def render_pose(self, keypoints: np.ndarray) -> np.ndarray:
        """(T, 134, 3) stored keypoints -> (T, S, S, 3) uint8 pose frames (the training rendering)."""
        from mmgt.render import draw_pose

        return draw_pose(keypoints, self.size, **self.export.pose_render)

    # ------------------------------------------------------------------ generation
    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        """Generate (T, S, S, 3) uint8 frames, T = len(keypoints).

        :meth:`iter_frames` (same arguments), the decoded pieces joined.
        """
        return np.concatenate(list(self.iter_frames(*args, **kwargs)))

    @torch.no_grad()
    def iter_frames(
        self,
        ref_image: np.ndarray,
        keypoints: np.ndarray,
        audio: np.ndarray | None = None,
        audio_features: np.ndarray | None = None,
        ref_keypoints: np.ndarray | None = None,
        *,
        seed: int = 0,
        progress: bool = True,
        **options: Any,
    ) -> Iterator[np.ndarray]:
        """Generate a video for ``keypoints`` (T, 134, 3), yielding (<= decode_chunk, S, S, 3) uint8 pieces.

        The pieces come in order as they are decoded (denoising runs first, over the whole clip), so that a
        caller writing them out never holds the decoded video. ``options``: keys of
        :data:`~mmgt.stage2.export.DEFAULT_INFERENCE` (``steps``, ``guidance_scale``, ``context_frames``,
        ``scheduler``, ``cfg_mode``, ...) overriding the export's inference settings (None: keep).
        """
        unknown = sorted(set(options) - set(DEFAULT_INFERENCE))
        if unknown:
            raise TypeError(f"Stage2Pipeline: unknown options {unknown}; known: {sorted(DEFAULT_INFERENCE)}")
        kps = np.asarray(keypoints, np.float32)
        if kps.ndim != 3 or kps.shape[1:] != (134, 3):
            raise ValueError(f"keypoints must be (T, 134, 3), got {kps.shape}")
        n = len(kps)
        opts = self.export.settings(**options)
        feats = None
        if self.use_audio:
            if audio_features is None:
                if audio is None:
                    raise ValueError("Stage2Pipeline: give audio or audio_features (the model uses audio)")
                audio_features = self.audio_features(audio, n)
            feats = torch.as_tensor(np.asarray(audio_features, np.float32))
            if len(feats) < n:
                raise ValueError(f"audio features cover {len(feats)} frames, the poses {n}")
            feats = feats[:n]
        ref_kps = kps[0] if ref_keypoints is None else np.asarray(ref_keypoints, np.float32)
        decode_every = int(opts.pop("decode_chunk"))
        latents = self.denoise(
            square_image(ref_image, self.size),
            feats,
            torch.from_numpy(kps),
            torch.from_numpy(ref_kps),
            seed=seed,
            progress=progress,
            decode_chunk=decode_every,
            **opts,
        )
        yield from self.decode(latents, decode_every)

    @torch.no_grad()
    def generate(
        self,
        ref_image: Tensor,
        audio_features: Tensor | None,
        keypoints: Tensor,
        ref_keypoints: Tensor,
        **options: Any,
    ) -> np.ndarray:
        """Tensor-level generation (also used for the training samples): decoded frames (T, S, S, 3) uint8.

        :meth:`denoise` with the same arguments (``options``: its keyword arguments), then the frames
        decoded ``decode_chunk`` at a time.
        """
        latents = self.denoise(ref_image, audio_features, keypoints, ref_keypoints, **options)
        return np.concatenate(list(self.decode(latents, options.get("decode_chunk", DECODE_CHUNK))))

    @torch.no_grad()
    def denoise(
        self,
        ref_image: Tensor,
        audio_features: Tensor | None,
        keypoints: Tensor,
        ref_keypoints: Tensor,
        *,
        steps: int,
        guidance_scale: float,
        context_frames: int,
        context_overlap: int,
        context_batch: int = 1,
        closed_loop: bool = False,
        decode_chunk: int = DECODE_CHUNK,
        pose_cache: str = "device",
        audio_branches: Sequence[str] | None = None,
        motion_scale: Sequence[float] | None = None,
        scheduler: str = "ddim",
        cfg_mode: str = "batched",
        channels_last: bool = False,
        sdpa_backend: str | None = None,
        compile: bool = False,  # noqa: A002 - the option's name
        compile_mode: str | None = None,
        compile_backend: str | None = None,
        compile_fullgraph: bool = True,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        seed: int = 0,
        progress: bool = True,
    ) -> Tensor:
        """The denoised latent video (1, C, T, h, w); sets :attr:`last_stats`.

        Args:
            ref_image: (1, 3, S, S) in [-1, 1].
            audio_features: (T, L, D) or (T, D) per-frame features, or None (no audio).
            keypoints: (T, 134, 3) stored layout (rendered to the pose video chunk by chunk, and the motion
                masks).
            ref_keypoints: (134, 3) keypoints of the reference image.
            steps: denoising steps.
            guidance_scale: classifier-free guidance scale.
            context_frames: frames per context window.
            context_overlap: frames shared by neighbouring windows.
            context_batch: windows denoised in one batch.
            closed_loop: as :func:`context_windows`.
            decode_chunk: frames rendered / decoded at a time.
            pose_cache: where the PoseGuider features are kept (one of ``POSE_CACHES``).
            audio_branches: the audio branches used (None: all).
            motion_scale: the weight of each audio branch (None: the modules' own weights).
            scheduler: the sampler, a key of :data:`mmgt.stage2.speed.SCHEDULERS`.
            cfg_mode: ``batched`` (both CFG halves in one UNet call) or ``sequential`` (two calls).
            channels_last: convolutional networks and their 4-D inputs in channels-last memory format.
            sdpa_backend: the attention kernel (:data:`mmgt.stage2.speed.SDPA_BACKENDS`; None: torch's).
            compile: ``torch.compile`` the denoiser (compiled once per mode, backend and fullgraph, then
                kept; one graph per input shape and kind of call, reused across steps and windows).
            compile_mode: ``torch.compile``'s ``mode`` (None: its default).
            compile_backend: ``torch.compile``'s ``backend`` (None: ``inductor``; ``aot_eager`` / ``eager``
                trace without generating kernels, e.g. to check the graph on a CPU).
            compile_fullgraph: ``torch.compile``'s ``fullgraph``: the whole denoiser as one graph (a graph
                break is an error; the forward has none); False lets dynamo split it instead.
            vae_slicing: diffusers' VAE slicing, one frame at a time (kept for :meth:`decode`).
            vae_tiling: diffusers' VAE tiling, overlapping blended tiles (kept for :meth:`decode`).
            seed: seed of the initial noise.
            progress: show a progress bar.

        Returns:
            latents (1, C, T, h, w) for :meth:`decode`.
        """
        from tqdm.auto import tqdm

        dev, n = self.device, keypoints.shape[0]
        if int(steps) < 1:
            raise ValueError(f"Stage2Pipeline: steps must be >= 1, got {steps}")
        if pose_cache not in POSE_CACHES:
            raise ValueError(f"pose_cache must be one of {POSE_CACHES}, got {pose_cache!r}")
        if cfg_mode not in CFG_MODES:
            raise ValueError(f"cfg_mode must be one of {CFG_MODES}, got {cfg_mode!r}")
        sched = make_scheduler(self.export.noise_scheduler, scheduler)
        sched.set_timesteps(int(steps), device=dev)
        self._prepare(channels_last, vae_slicing, vae_tiling)
        den = self._denoiser(compile, compile_mode, compile_backend, compile_fullgraph)
        cfg = guidance_scale != 1.0
        with sdpa_context(sdpa_backend):
            cond = self._conditions(
                ref_image, audio_features, keypoints, ref_keypoints, pose_cache, decode_chunk, audio_branches
            )
            cond.branch_weights = tuple(float(x) for x in motion_scale) if motion_scale else None
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            shape = (1, self.components.denoiser.latent_channels, n, *cond.latent_size)
            latents = torch.randn(shape, generator=gen).to(dev) * sched.init_noise_sigma  # fp32 state
            windows = context_windows(n, int(context_frames), int(context_overlap), bool(closed_loop))
            count = torch.zeros(n, device=dev)  # windows per frame (the same at every step)
            for window in windows:
                count[torch.tensor(window, device=dev)] += 1
            acc = torch.empty_like(latents)
            for t in tqdm(sched.timesteps, desc="stage2 denoising", unit="step", disable=not progress):
                acc.zero_()
                scaled = sched.scale_model_input(latents, t)
                for b in range(0, len(windows), int(context_batch)):
                    idx = torch.tensor(windows[b : b + int(context_batch)], device=dev)  # (nw, F)
                    pred = self._window_prediction(den, scaled, t, idx, cond, guidance_scale, cfg_mode)
                    for j in range(idx.shape[0]):
                        acc[0][:, idx[j]] += pred[j].float()
                acc /= count.view(1, 1, n, 1, 1)
                latents = self._step(sched, acc, t, latents)

        evals = int(steps) * sum(len(w) for w in windows) * (2 if cfg else 1)
        self.last_stats = {
            "frames": n,
            "steps": int(steps),
            "windows": len(windows),
            "cfg": cfg,
            "cfg_mode": cfg_mode,
            "scheduler": scheduler,
            "dtype": str(self.dtype).removeprefix("torch."),
            "unet_frame_evals": evals,
            "unet_frame_evals_per_frame": evals / n,
        }
        return latents

    @staticmethod
    def _step(sched: Any, model_output: Tensor, t: Tensor, latents: Tensor) -> Tensor:
        """One scheduler step of the whole latent video (1, C, T, h, w), in fp32.

        DDIM is elementwise: it steps slices of 64 frames (its temporaries per slice instead of per video);
        the multistep solvers keep per-step state and step the whole video at once.
        """
        if not isinstance(sched, SLICEABLE):
            return sched.step(model_output, t, latents).prev_sample
        for i in range(0, latents.shape[2], 64):
            latents[:, :, i : i + 64] = sched.step(
                model_output[:, :, i : i + 64], t, latents[:, :, i : i + 64]
            ).prev_sample
        return latents

    def _prepare(self, channels_last: bool, vae_slicing: bool, vae_tiling: bool) -> None:
        """Apply the memory-format and VAE levers to the networks (kept until the next call)."""
        comps = self.components
        set_memory_format([comps.denoiser, comps.reference_net, comps.pose_guider, comps.vae], channels_last)
        configure_vae(comps.vae, vae_slicing, vae_tiling)
        self._channels_last = channels_last

    def _denoiser(
        self,
        compile: bool,  # noqa: A002
        mode: str | None,
        backend: str | None,
        fullgraph: bool = True,
    ) -> Any:
        """The denoiser, or its ``torch.compile`` (once per mode, backend and fullgraph, then reused)."""
        if not compile:
            return self.components.denoiser
        key = (mode, backend or "inductor", bool(fullgraph))
        if key not in self._compiled:
            self._compiled[key] = torch.compile(
                self.components.denoiser, mode=mode, backend=key[1], fullgraph=key[2]
            )
        return self._compiled[key]

    def _conditions(
        self,
        ref_image: Tensor,
        audio_features: Tensor | None,
        keypoints: Tensor,
        ref_keypoints: Tensor,
        pose_cache: str,
        chunk: int,
        audio_branches: Sequence[str] | None,
    ) -> _Conditions:
        """What every window and step reuses, for all T frames.

        Reference states, image embedding, PoseGuider features (per ``pose_cache``), audio tokens and masks.
        """
        comps, dev, den = self.components, self.device, self.components.denoiser
        n = keypoints.shape[0]
        ref = memory_format(ref_image.to(dev), self._channels_last)
        ref_latent = encode_frames(comps.vae, ref).to(self.dtype)
        embeds = image_embeddings(comps.image_encoder, ref)
        cond = _Conditions(
            embeds=embeds,
            states=comps.reference_net.write_states(ref_latent, embeds),
            keypoints=keypoints,
            latent_size=tuple(ref_latent.shape[-2:]),
            branch_regions=tuple(audio_branches) if audio_branches else None,
        )
        h, w = cond.latent_size
        if pose_cache != "none":  # PoseGuider features once for all frames, filled in place
            store = dev if pose_cache == "device" else torch.device("cpu")
            pose = torch.empty((den.pose_channels, n, h, w), device=store, dtype=comps.pose_guider.dtype)
            for i in range(0, n, chunk):
                frames = self._pose_chunk(keypoints[i : i + chunk]).to(dev, self.dtype).movedim(0, 1)[None]
                pose[:, i : i + frames.shape[2]] = comps.pose_guider(frames)[0].to(store)
            cond.pose = pose
        if audio_features is not None and self.use_audio:
            windows = audio_windows(audio_features.to(dev, self.dtype), self.export.audio_margin)[None]
            cond.tokens = torch.cat(
                [comps.audio_proj(windows[:, i : i + 64]) for i in range(0, n, 64)], dim=1
            )[0]  # (T, N, C)
            regions = mask_regions_of(audio_branches) if audio_branches else den.mask_regions
            masks = self.guidance(
                keypoints.to(dev)[None], ref_keypoints.to(dev)[None], den.level_sizes(h, w), regions
            )
            cond.masks = None if masks is None else masks.to(self.dtype)
        return cond

    def _pose_features(self, cond: _Conditions, idx: Tensor) -> Tensor:
        """(nw, C0, F, h, w) PoseGuider features of the windows ``idx`` (nw, F)."""
        if cond.pose is not None:
            return cond.pose[:, idx.to(cond.pose.device)].permute(1, 0, 2, 3, 4).to(self.device)
        frames = self._pose_chunk(cond.keypoints[idx.flatten().cpu()]).unflatten(
            0, idx.shape
        )  # (nw, F, 3, S, S)
        return self.components.pose_guider(frames.to(self.device, self.dtype).transpose(1, 2))

    def _window_prediction(
        self,
        den: Any,
        latents: Tensor,
        t: Tensor,
        idx: Tensor,
        cond: _Conditions,
        guidance_scale: float,
        cfg_mode: str = "batched",
    ) -> Tensor:
        """The (guided) model output (nw, C, F, h, w) of the windows ``idx`` (nw, F) of ``latents``.

        ``latents``: (1, C, T, h, w); with CFG the unconditional half runs in the same batch
        (``cfg_mode="batched"``) or in a second call (``"sequential"``).
        """
        nw, flat = idx.shape[0], idx.flatten()
        inputs = _WindowInputs(
            latents=latents[0][:, idx].permute(1, 0, 2, 3, 4).to(self.dtype),  # (nw, C, F, h, w)
            pose=self._pose_features(cond, idx),
            embeds=cond.embeds.expand(nw, -1, -1),
            states={k: v.expand(nw, -1, -1) for k, v in cond.states.items()},
            keep=(True,) * nw,
            tokens=None if cond.tokens is None else cond.tokens[flat],
            masks=None if cond.masks is None else cond.masks.select(flat),
        )
        if guidance_scale == 1.0:
            return inputs.predict(den, t, cond)
        if cfg_mode == "batched":
            uncond, guided = inputs.with_unconditional().predict(den, t, cond).chunk(2)
        else:
            uncond, guided = inputs.unconditional().predict(den, t, cond), inputs.predict(den, t, cond)
        return uncond + guidance_scale * (guided - uncond)

    @torch.no_grad()
    def decode(self, latents: Tensor, decode_chunk: int = DECODE_CHUNK) -> Iterator[np.ndarray]:
        """Latents (1, C, T, h, w) -> (<= decode_chunk, S, S, 3) uint8 frames, VAE-decoded piece by piece."""
        flat = latents[0].permute(1, 0, 2, 3)  # (T, C, h, w)
        for i in range(0, flat.shape[0], int(decode_chunk)):
            piece = memory_format(flat[i : i + int(decode_chunk)], self._channels_last)
            chunk = decode_latents(self.components.vae, piece)
            yield np.ascontiguousarray(tensor_to_frames(chunk.float().cpu()).numpy())

    def _pose_chunk(self, keypoints: Tensor) -> Tensor:
        """Keypoints (f, 134, 3) -> rendered pose frames (f, 3, S, S) in [0, 1] (PoseGuider input)."""
        return pose_to_tensor(torch.from_numpy(self.render_pose(keypoints.cpu().numpy())))


def reference_evals_per_frame(
    n_frames: int = 80, steps: int = 30, context: int = 12, overlap: int = 4, cfg: bool = True
) -> float:
    """UNet-frame evaluations per output frame of the original sampler (closed-loop windows)."""
    windows = context_windows(n_frames, context, overlap, closed_loop=True)
    return steps * (2 if cfg else 1) * sum(len(w) for w in windows) / n_frames


__all__: Sequence[str] = ("Stage2Pipeline", "context_windows", "reference_evals_per_frame", "square_image")
