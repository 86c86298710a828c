"""``Stage2LitModule``: both Stage II training processes with Lightning.

* **image-level** (``conf/model/stage2/process/image.yaml``): single frames; ReferenceNet, denoiser (spatial
  layers) and PoseGuider train; no audio.
* **video-level** (``process/video.yaml``): clips of F frames; only the motion modules, the MM-HAA audio
  branches and the AudioProjModel train; everything else is frozen (initialised from an image-level
  export with ``init_from``, or from scratch for the toy).

Which parameters train is a list of regular expressions over the component parameter names
(``reference_net.…``, ``denoiser.unet.…``, ``pose_guider.…``, ``audio_proj.…``) minus the ``frozen`` list,
minus the ReferenceNet parameters that cannot affect its states, minus the audio modules when the mask
guidance uses no audio. Both processes share one ``model_step``.

Diffusion (diffusers ``DDPMScheduler``; config ``noise_scheduler``): v-prediction, zero-SNR rescale,
trailing timesteps; noise offset; min-SNR-γ loss weights (``compute_snr``: ``min(snr, γ) / (snr + 1)`` for
v-prediction); condition dropout for classifier-free guidance (reference + image embedding together with
``reference_drop``; audio tokens with ``audio_drop``). Gradient checkpointing (denoiser blocks,
ReferenceNet) and bf16 autocast (``trainer.precision=bf16-mixed``); SDPA in every processor; optional
8-bit AdamW (:func:`adamw`, GPU, ``bitsandbytes``).

Logging: ``train/loss``, ``train/mse``, ``val/loss``, ``val/mse`` (validation noise and timesteps are fixed
per batch, so the curve is comparable across epochs) and every ``sample_every_n_epochs`` (and, with
``sample_at_end``, at the final step of every training) a TensorBoard video ``val/sample``: generated |
ground truth | pose with mask overlay.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.training_utils import compute_snr
from torch import Tensor
from transformers import CLIPVisionModelWithProjection

from mmgt.schema import AUDIO_MARGIN, FPS, SAMPLE_RATE
from mmgt.stage2.attention import Stage2AttentionContext, reference_keep_or_none
from mmgt.stage2.audio_modules import AUDIO_PARAMETER_PATTERNS
from mmgt.stage2.audio_proj import AudioProjModel
from mmgt.stage2.components import (
    Stage2Components,
    encode_frames,
    image_embeddings,
    tensor_to_frames,
)
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.export import Stage2Export
from mmgt.stage2.guidance import MaskGuidance
from mmgt.stage2.pipeline import Stage2Pipeline
from mmgt.stage2.pose_guider import PoseGuider
from mmgt.stage2.reference_net import ReferenceNet
from mmgt.tb import SampleSchedule, add_video, tensorboard_writer

log = logging.getLogger(__name__)

AUDIO_PARAMETERS: tuple[str, ...] = (r"^audio_proj\.", *AUDIO_PARAMETER_PATTERNS)
"""Parameters of the audio path (frozen when the mask guidance uses no audio)."""


def adamw(
    params: Iterable[Tensor],
    lr: float = 1e-5,
    betas: Sequence[float] = (0.9, 0.999),
    weight_decay: float = 1e-2,
    eps: float = 1e-8,
    eight_bit: bool = False,
) -> torch.optim.Optimizer:
    """AdamW, or bitsandbytes' 8-bit AdamW (``eight_bit``; ``bitsandbytes>=0.50``, on GPU or CPU)."""
    if eight_bit:
        try:
            import bitsandbytes as bnb
        except ImportError as e:
            raise ImportError(
                "optimizer eight_bit=true (model/stage2/optimizer=adamw8bit) needs bitsandbytes: "
                "pip install 'bitsandbytes>=0.50' (CUDA or its CPU backend), or model/stage2/optimizer=adamw"
            ) from e
        return bnb.optim.AdamW8bit(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay, eps=eps)


class Stage2LitModule(SampleSchedule, pl.LightningModule):
    """Stage II training (one class for both processes; see the module docstring).

    Args:
        vae, image_encoder, reference_net, denoiser, pose_guider: the networks (built by Hydra through
            :mod:`mmgt.stage2.loading`).
        audio_proj: partial building the :class:`AudioProjModel` given ``audio_layers``, ``audio_dim`` and
            ``window`` (2 ``audio_margin`` + 1).
        audio_layers, audio_dim: per-frame audio feature shape (L, D) (from the DataModule).
        data_meta: what generation needs to know about the data (size, audio features, audio margin,
            pose rendering; from the DataModule), recorded in the export.
        mask_guidance: the mask ablation (:mod:`mmgt.stage2.guidance`).
        process: ``image`` or ``video`` (recorded in the export).
        use_audio: feed audio tokens (video-level) or not (image-level); a guidance without audio
            (``uses_audio`` False) turns it off. Decided here, once, and recorded in the export.
        trainable / frozen: regular expressions over component parameter names.
        also_frozen: more frozen patterns, set by a variant (the released MMGT froze the ReferenceNet's
            ``up_blocks.3``) independently of the process's ``frozen``.
        init_from: an earlier Stage II export whose ``init_parts`` initialise this model.
        noise_scheduler: ``DDPMScheduler`` keyword arguments (also the inference schedule).
        min_snr_gamma: γ of min-SNR weighting (None = uniform).
        noise_offset: offset noise scale (per sample and channel, shared by the frames).
        reference_drop / audio_drop: condition dropout probabilities (classifier-free guidance).
        gradient_checkpointing: checkpoint the denoiser blocks and the ReferenceNet.
        optimizer: partial taking ``params``; scheduler: optional partial taking ``optimizer``.
        inference: generation settings recorded in the export (overrides of
            :data:`~mmgt.stage2.export.DEFAULT_INFERENCE`: steps, guidance_scale, context ...).
        sample_every_n_epochs / sample_steps: TensorBoard sample videos (0 = off).
        sample_at_end: one more sample video at the end of every training (short runs have no sampling epoch).
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModelWithProjection,
        reference_net: ReferenceNet,
        denoiser: MMGTDenoiser,
        pose_guider: PoseGuider,
        audio_proj: Callable[..., AudioProjModel],
        audio_layers: int,
        audio_dim: int,
        data_meta: dict[str, Any],
        mask_guidance: MaskGuidance,
        process: str = "image",
        use_audio: bool = False,
        trainable: Sequence[str] = (r"^reference_net\.", r"^denoiser\.", r"^pose_guider\."),
        frozen: Sequence[str] = (),
        also_frozen: Sequence[str] = (),
        init_from: str | None = None,
        init_parts: Sequence[str] = ("reference_net", "denoiser", "pose_guider"),
        noise_scheduler: dict[str, Any] | None = None,
        min_snr_gamma: float | None = 5.0,
        noise_offset: float = 0.05,
        reference_drop: float = 0.1,
        audio_drop: float = 0.05,
        gradient_checkpointing: bool = False,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        inference: dict[str, Any] | None = None,
        sample_every_n_epochs: int = 5,
        sample_steps: int = 10,
        sample_at_end: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            logger=False,
            ignore=[
                "vae",
                "image_encoder",
                "reference_net",
                "denoiser",
                "pose_guider",
                "audio_proj",
                "mask_guidance",
                "optimizer",  # factories: the checkpoint keeps plain values only (resume with weights_only)
                "scheduler",
            ],
        )
        self.components = Stage2Components(
            vae=vae,
            image_encoder=image_encoder,
            reference_net=reference_net,
            denoiser=denoiser,
            pose_guider=pose_guider,
            audio_proj=audio_proj(
                audio_layers=audio_layers,
                audio_dim=audio_dim,
                window=2 * int(data_meta.get("audio_margin", AUDIO_MARGIN)) + 1,
            ),
        )
        if init_from:
            from mmgt.stage2.loading import load_export_weights

            _check_init_size(init_from, int(data_meta["size"]) if "size" in data_meta else None)
            load_export_weights(self.components, init_from, list(init_parts))
            log.info("initialised %s from %s", ", ".join(init_parts), init_from)
        self.mask_guidance = mask_guidance
        self.use_audio = bool(use_audio) and mask_guidance.uses_audio  # the one place audio is decided
        self.noise_scheduler = DDPMScheduler(**(noise_scheduler or {}))
        self.optimizer_factory = optimizer or (lambda params: adamw(params))
        self.scheduler_factory = scheduler
        self.trainable_names = self._select_trainable(trainable, [*frozen, *also_frozen])
        if gradient_checkpointing:
            self.components.denoiser.enable_gradient_checkpointing()
            self.components.reference_net.enable_gradient_checkpointing()
        self._sampled_step: int | None = None  # global step of the last logged sample

    # ------------------------------------------------------------------ parameters
    def _select_trainable(self, trainable: Sequence[str], frozen: Sequence[str]) -> list[str]:
        comps = self.components
        unused = {f"reference_net.{n}" for n in comps.reference_net.unused_parameter_names()}
        never = [*frozen] + ([] if self.use_audio else list(AUDIO_PARAMETERS))
        names = []
        for name, param in comps.named_parameters():
            train = (
                any(re.search(p, name) for p in trainable)
                and not any(re.search(p, name) for p in never)
                and name not in unused
                and not name.startswith(("vae.", "image_encoder."))
            )
            param.requires_grad_(train)
            if train:
                names.append(name)
        if not names:
            raise ValueError(f"no trainable parameters match {list(trainable)} (minus {never})")
        return names

    def train(self, mode: bool = True) -> Stage2LitModule:
        """Train mode for the networks being trained; the frozen encoders stay in eval mode."""
        super().train(mode)
        self.components.vae.eval()
        self.components.image_encoder.eval()
        return self

    # ------------------------------------------------------------------ steps
    def model_step(
        self, batch: dict[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Diffusion loss of a batch: ``{"loss": weighted, "mse": unweighted}`` (scalars).

        The batch: frames (B, F, 3, S, S), pose (B, F, 3, S, S), ref_image (B, 3, S, S),
        audio (B, F, W, L, D), keypoints (B, F, 134, 3), ref_keypoints (B, 134, 3).
        """
        comps, sched = self.components, self.noise_scheduler
        frames = batch["frames"]
        b, f = frames.shape[:2]
        dev = frames.device

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=generator, device=dev)

        latents = encode_frames(comps.vae, frames.flatten(0, 1)).unflatten(0, (b, f)).permute(0, 2, 1, 3, 4)
        ref_latents = encode_frames(comps.vae, batch["ref_image"])
        keep = rand(b) >= (self.hparams.reference_drop if generator is None else 0.0)
        # drawn even without audio: every variant sees the same noise and timesteps (comparable val losses)
        audio_keep = rand(b) >= (self.hparams.audio_drop if generator is None else 0.0)
        embeds = image_embeddings(comps.image_encoder, batch["ref_image"]) * keep[:, None, None]
        states = comps.reference_net.write_states(ref_latents, embeds)
        pose = comps.pose_guider(batch["pose"].permute(0, 2, 1, 3, 4))

        tokens = masks = None
        if self.use_audio:
            tokens = comps.audio_proj(batch["audio"])  # (B, F, N, C)
            tokens = (tokens * audio_keep[:, None, None, None]).flatten(0, 1)
            den = comps.denoiser
            masks = self.mask_guidance(
                batch["keypoints"],
                batch["ref_keypoints"],
                den.level_sizes(*latents.shape[-2:]),
                den.mask_regions,
            )
        context = Stage2AttentionContext(
            reference_states=states,
            reference_keep=reference_keep_or_none(keep),
            audio_tokens=tokens,
            region_masks=masks,
        )

        noise = torch.randn(latents.shape, generator=generator, device=dev, dtype=latents.dtype)
        if self.hparams.noise_offset:
            offset = torch.randn((b, latents.shape[1], 1, 1, 1), generator=generator, device=dev)
            noise = noise + self.hparams.noise_offset * offset
        steps = sched.config.num_train_timesteps
        t = torch.randint(0, steps, (b,), generator=generator, device=dev)
        noisy = sched.add_noise(latents, noise, t)
        if sched.config.prediction_type == "v_prediction":
            target = sched.get_velocity(latents, noise, t)
        elif sched.config.prediction_type == "epsilon":
            target = noise
        else:
            raise ValueError(f"unsupported prediction_type {sched.config.prediction_type!r}")
        pred = comps.denoiser(noisy, t, embeds, pose, context)
        mse = (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3, 4))  # (B,)
        gamma = self.hparams.min_snr_gamma
        if gamma:
            snr = compute_snr(sched, t)
            weight = snr.clamp(max=gamma)
            weight = weight / (snr + 1) if sched.config.prediction_type == "v_prediction" else weight / snr
        else:
            weight = torch.ones_like(mse)
        return {"loss": (mse * weight).mean(), "mse": mse.mean()}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Log ``train/loss`` and ``train/mse``; return the loss (scalar)."""
        losses = self.model_step(batch)
        bs = batch["frames"].shape[0]
        self.log("train/loss", losses["loss"], batch_size=bs, prog_bar=True)
        self.log("train/mse", losses["mse"], batch_size=bs)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Log ``val/loss`` and ``val/mse`` (noise seeded by ``batch_idx``); batch 0 may log a sample."""
        gen = torch.Generator(device=batch["frames"].device).manual_seed(1000 + batch_idx)
        losses = self.model_step(batch, generator=gen)
        bs = batch["frames"].shape[0]
        self.log_dict({f"val/{k}": v for k, v in losses.items()}, batch_size=bs, sync_dist=True)
        if batch_idx == 0 and self.sampling_epoch():
            self._log_sample(batch)

    def on_train_end(self) -> None:
        """A sample of the first validation batch at the final step (with the EMA weights, when used)."""
        batch = self.end_of_training_batch()
        if batch is not None:
            self._log_sample(batch)

    @torch.no_grad()
    def _log_sample(self, batch: dict[str, Any]) -> None:
        """Generate the first validation sample; log generated | ground truth | pose with masks."""
        writer = tensorboard_writer(self.loggers)
        if writer is None:
            return
        from mmgt.masks import MaskConfig, motion_masks
        from mmgt.render import add_caption, overlay_masks, side_by_side

        pipe = self.pipeline()
        kps = batch["keypoints"][0].float()
        gen = pipe.generate(
            batch["ref_image"][:1],
            batch["audio"][0][:, int(self.hparams.data_meta.get("audio_margin", AUDIO_MARGIN))]
            if self.use_audio
            else None,
            kps,
            batch["ref_keypoints"][0].float(),
            seed=0,
            progress=False,
            **{**pipe.inference, "steps": self.hparams.sample_steps},
        )
        truth = tensor_to_frames(batch["frames"][0].float().cpu()).numpy()
        pose = tensor_to_frames(batch["pose"][0].float().cpu() * 2 - 1).numpy()
        masks = motion_masks(kps.cpu(), pose.shape[1], MaskConfig()).numpy()
        video = side_by_side(
            add_caption(gen, "generated"), add_caption(truth, "ground truth"), overlay_masks(pose, masks)
        )
        add_video(writer, "val/sample", video, FPS, self.global_step)
        self._sampled_step = self.global_step

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        """The optimizer over the trainable parameters, with its per-step LR scheduler when one is set."""
        params = [p for p in self.components.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ export / generation
    def export_meta(self) -> Stage2Export:
        """Generation metadata (``mmgt_stage2.json``)."""
        h = self.hparams
        return Stage2Export.from_json(
            {
                **dict(h.data_meta),
                "process": h.process,
                "use_audio": self.use_audio,
                "mask_guidance": self.mask_guidance.config(),
                "noise_scheduler": _clean_scheduler_config(dict(self.noise_scheduler.config)),
                "inference": dict(h.inference or {}),
                "fps": FPS,
                "sample_rate": SAMPLE_RATE,
            },
            "Stage2LitModule.export_meta",
        )

    def pipeline(self) -> Stage2Pipeline:
        """A :class:`Stage2Pipeline` on the current weights (no copy)."""
        return Stage2Pipeline(self.components, self.export_meta(), str(self.device))

    def export(self, out_dir: str | Path) -> Path:
        """The export folder (:meth:`~mmgt.stage2.export.Stage2Export.save`) in ``out_dir``."""
        return self.export_meta().save(self.components, out_dir)


def _check_init_size(export_dir: str | Path, size: int | None) -> None:
    """An ``init_from`` export trained at another frame size is an error at start-up.

    Its frozen VAE stand-in and its spatial layers saw frames of that size.
    """
    import json

    from mmgt.stage2.export import EXPORT_META

    meta_path = Path(export_dir) / EXPORT_META
    if size is None or not meta_path.is_file():
        return  # load_export_weights explains a folder that is not an export
    trained = json.loads(meta_path.read_text()).get("size")  # only the size: checked before anything loads
    if trained is not None and int(trained) != size:
        raise ValueError(
            f"model.init_from={export_dir} was trained at {trained}x{trained} frames, this run's data.size "
            f"is {size}: pass data.size={trained} (or train the image level at data.size={size})"
        )


def _clean_scheduler_config(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}
