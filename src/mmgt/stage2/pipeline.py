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
* VAE decoding in slices of ``decode_chunk`` frames; a tqdm bar over the denoising steps.

``last_stats`` reports the UNet-frame evaluations per output frame (steps x CFG x window coverage).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
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
from mmgt.stage2.export import Stage2Export
from mmgt.stage2.guidance import MaskGuidance

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


def make_scheduler(config: dict[str, Any]) -> DDIMScheduler:
    """The inference DDIM scheduler on the training noise schedule (``noise_scheduler`` in the metadata)."""
    return DDIMScheduler.from_config(
        DDPMScheduler(**config).config, clip_sample=False, set_alpha_to_one=False
    )


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


class Stage2Pipeline:
    """Stage II generation from a component set and its metadata (see the module docstring).

    Args:
        components: the six networks.
        export: the export metadata (:class:`~mmgt.stage2.export.Stage2Export`, ``mmgt_stage2.json``).
        device: where to run (default: the components' device).
    """

    def __init__(self, components: Stage2Components, export: Stage2Export, device: str | None = None) -> None:
        self.components = components
        self.export = export
        self.device = torch.device(device) if device else next(components.parameters()).device
        self.components.to(self.device)
        self.guidance: MaskGuidance = export.guidance()
        self.last_stats: dict[str, Any] = {}
        self._extractor: Any = None

    @classmethod
    def from_pretrained(cls, export_dir: str | Path, device: str = "cpu") -> Stage2Pipeline:
        """Load a Stage II export folder (``<run>/export`` of ``mmgt-train``)."""
        return cls(*Stage2Export.load(export_dir, device), device)

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
        steps: int | None = None,
        guidance_scale: float | None = None,
        context_frames: int | None = None,
        context_overlap: int | None = None,
        context_batch: int | None = None,
        closed_loop: bool | None = None,
        decode_chunk: int | None = None,
        pose_cache: str | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> Iterator[np.ndarray]:
        """Generate a video for ``keypoints`` (T, 134, 3), yielding (<= decode_chunk, S, S, 3) uint8 pieces.

        The pieces come in order as they are decoded (denoising runs first, over the whole clip), so that a
        caller writing them out never holds the decoded video; the keyword arguments override the export's
        inference defaults.
        """
        kps = np.asarray(keypoints, np.float32)
        if kps.ndim != 3 or kps.shape[1:] != (134, 3):
            raise ValueError(f"keypoints must be (T, 134, 3), got {kps.shape}")
        n = len(kps)
        opts = self.export.settings(
            steps=steps,
            guidance_scale=guidance_scale,
            context_frames=context_frames,
            context_overlap=context_overlap,
            context_batch=context_batch,
            closed_loop=closed_loop,
            decode_chunk=decode_chunk,
            pose_cache=pose_cache,
        )
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
            seed: seed of the initial noise.
            progress: show a progress bar.

        Returns:
            latents (1, C, T, h, w) for :meth:`decode`.
        """
        from tqdm.auto import tqdm

        dev, den = self.device, self.components.denoiser
        n = keypoints.shape[0]
        if int(steps) < 1:
            raise ValueError(f"Stage2Pipeline: steps must be >= 1, got {steps}")
        if pose_cache not in POSE_CACHES:
            raise ValueError(f"pose_cache must be one of {POSE_CACHES}, got {pose_cache!r}")
        scheduler = make_scheduler(self.export.noise_scheduler)
        scheduler.set_timesteps(int(steps), device=dev)
        cond = self._conditions(
            ref_image, audio_features, keypoints, ref_keypoints, pose_cache, decode_chunk, audio_branches
        )
        cond.branch_weights = tuple(float(x) for x in motion_scale) if motion_scale else None

        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        latents = torch.randn((1, den.latent_channels, n, *cond.latent_size), generator=gen).to(dev)
        latents = latents * scheduler.init_noise_sigma
        windows = context_windows(n, int(context_frames), int(context_overlap), bool(closed_loop))
        count = torch.zeros(n, device=dev)  # windows per frame (the same at every step)
        for window in windows:
            count[torch.tensor(window, device=dev)] += 1
        acc = torch.empty_like(latents)
        evals = 0
        for t in tqdm(scheduler.timesteps, desc="stage2 denoising", unit="step", disable=not progress):
            acc.zero_()
            scaled = scheduler.scale_model_input(latents, t)
            for b in range(0, len(windows), int(context_batch)):
                idx = torch.tensor(windows[b : b + int(context_batch)], device=dev)  # (nw, F)
                pred = self._window_prediction(scaled, t, idx, cond, guidance_scale)
                evals += pred.shape[0] * idx.shape[1] * (2 if guidance_scale != 1.0 else 1)
                for j in range(idx.shape[0]):
                    acc[0][:, idx[j]] += pred[j]
            acc /= count.view(1, 1, n, 1, 1)
            for i in range(0, n, 64):  # DDIM is elementwise: stepping slices of frames is exact, and
                # keeps the scheduler's temporaries per slice instead of per video
                latents[:, :, i : i + 64] = scheduler.step(
                    acc[:, :, i : i + 64], t, latents[:, :, i : i + 64]
                ).prev_sample

        self.last_stats = {
            "frames": n,
            "steps": int(steps),
            "windows": len(windows),
            "cfg": guidance_scale != 1.0,
            "unet_frame_evals": evals,
            "unet_frame_evals_per_frame": evals / n,
        }
        return latents

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
        ref = ref_image.to(dev)
        ref_latent = encode_frames(comps.vae, ref)
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
                frames = self._pose_chunk(keypoints[i : i + chunk]).to(dev).movedim(0, 1)[None]
                pose[:, i : i + frames.shape[2]] = comps.pose_guider(frames)[0].to(store)
            cond.pose = pose
        if audio_features is not None and self.use_audio:
            windows = audio_windows(audio_features.to(dev), self.export.audio_margin)[None]
            cond.tokens = torch.cat(
                [comps.audio_proj(windows[:, i : i + 64]) for i in range(0, n, 64)], dim=1
            )[0]  # (T, N, C)
            regions = mask_regions_of(audio_branches) if audio_branches else den.mask_regions
            cond.masks = self.guidance(
                keypoints.to(dev)[None], ref_keypoints.to(dev)[None], den.level_sizes(h, w), regions
            )
        return cond

    def _pose_features(self, cond: _Conditions, idx: Tensor) -> Tensor:
        """(nw, C0, F, h, w) PoseGuider features of the windows ``idx`` (nw, F)."""
        if cond.pose is not None:
            return cond.pose[:, idx.to(cond.pose.device)].permute(1, 0, 2, 3, 4).to(self.device)
        frames = self._pose_chunk(cond.keypoints[idx.flatten().cpu()]).unflatten(
            0, idx.shape
        )  # (nw, F, 3, S, S)
        return self.components.pose_guider(frames.to(self.device).transpose(1, 2))

    def _window_prediction(
        self, latents: Tensor, t: Tensor, idx: Tensor, cond: _Conditions, guidance_scale: float
    ) -> Tensor:
        """The (guided) model output (nw, C, F, h, w) of the windows ``idx`` (nw, F) of ``latents``.

        ``latents``: (1, C, T, h, w); with CFG the unconditional half runs in the same batch.
        """
        nw = idx.shape[0]
        flat = idx.flatten()
        lat = latents[0][:, idx].permute(1, 0, 2, 3, 4)  # (nw, C, F, h, w)
        pose_w = self._pose_features(cond, idx)
        emb_w = cond.embeds.expand(nw, -1, -1)
        states_w = {k: v.expand(nw, -1, -1) for k, v in cond.states.items()}
        tok_w = None if cond.tokens is None else cond.tokens[flat]
        mask_w = None if cond.masks is None else cond.masks.select(flat)
        keep = torch.ones(nw, dtype=torch.bool, device=self.device)
        cfg = guidance_scale != 1.0
        if cfg:
            lat, pose_w = torch.cat([lat, lat]), torch.cat([pose_w, pose_w])
            emb_w = torch.cat([torch.zeros_like(emb_w), emb_w])
            states_w = {k: torch.cat([v, v]) for k, v in states_w.items()}
            keep = torch.cat([torch.zeros_like(keep), keep])
            tok_w = None if tok_w is None else torch.cat([torch.zeros_like(tok_w), tok_w])
            mask_w = None if mask_w is None else mask_w.repeat(2)
        context = Stage2AttentionContext(
            reference_states=states_w,
            reference_keep=keep,
            audio_tokens=tok_w,
            region_masks=mask_w,
            branch_regions=cond.branch_regions,
            branch_weights=cond.branch_weights,
        )
        pred = self.components.denoiser(lat, t, emb_w, pose_w, context)
        if not cfg:
            return pred
        uncond, guided = pred.chunk(2)
        return uncond + guidance_scale * (guided - uncond)

    @torch.no_grad()
    def decode(self, latents: Tensor, decode_chunk: int = DECODE_CHUNK) -> Iterator[np.ndarray]:
        """Latents (1, C, T, h, w) -> (<= decode_chunk, S, S, 3) uint8 frames, VAE-decoded piece by piece."""
        flat = latents[0].permute(1, 0, 2, 3)  # (T, C, h, w)
        for i in range(0, flat.shape[0], int(decode_chunk)):
            chunk = decode_latents(self.components.vae, flat[i : i + int(decode_chunk)])
            yield np.ascontiguousarray(tensor_to_frames(chunk.cpu()).numpy())

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
