"""SMGA diffusion: x0-prediction with a cosine schedule through diffusers schedulers.

* Diffusion space: the network's standardised pose space ``z = (x - mean) / std`` per coordinate
  (``SMGATransformer.normalize_pose``; training-set statistics, identity until set, identity for the
  reference layout). Without it the lips - whose opening varies by ~1 % of the frame - would weigh ~1/400
  of a loss dominated by the hands, and a tiny model trained for minutes ignores the audio for them.
* Training (:meth:`PoseDiffusion.training_losses`): t ~ U{0..N-1}, z_t = ``DDPMScheduler.add_noise``,
  audio dropped with ``cond_drop_prob`` (null embeddings, for classifier-free guidance), the network
  predicts z0; the loss (below) is computed on z0.
* Sampling (:meth:`PoseDiffusion.sample`): ``DDIMScheduler`` with ``steps`` and ``eta``, trailing
  timestep spacing (the first step starts at t = N-1 as in the original's ``linspace(-1, N-1, steps+1)``,
  the last one lands on x0), x0 clipped to [-1, 1] in model space (every channel of the model space -
  and of the reference 402-d normalisation - lies in [-1, 1]) with the noise direction re-derived from
  the clipped x0 (``use_clipped_model_output``, as the original). Classifier-free guidance is batched:
  one forward on ``[x_t; x_t]`` with ``drop_audio = [False; True]``, ``x0 = uncond + w (cond - uncond)``;
  w = 1 runs the conditional branch alone. DDPM ancestral sampling is DDIM with eta = 1 and
  ``steps = num_train_timesteps`` (the original's separate DDPM path was dead code).

Loss, for model-space poses (B, T, 134, 3) with visibility v of the *target* (Delta = frame difference):

* ``position`` = masked MSE of (x, y) over visible points; ``velocity`` / ``acceleration`` = the same on
  Delta / Delta^2 of (x, y), a difference counting only where all frames involved are visible;
* ``face`` = position + velocity + acceleration restricted to the face keypoints;
* ``visibility`` = MSE on the visibility channel (all points). MSE, not BCE-with-logits: the channel is
  diffused and predicted like the coordinates (its x0 prediction is fed back into the DDIM update, so it
  must live in the data range, not be a logit); :meth:`PoseDiffusion.sample` thresholds it at 0.5 and
  zeroes (x, y) of invisible points, giving the model space of :func:`mmgt.schema.to_model_space`.
* ``loss`` = w_pos position + w_vel velocity + w_acc acceleration + w_face face + w_vis visibility
  (defaults 1, 1, 1, 3, 1 as the original's ``head_weight = 3``).

For ``(B, T, 402)`` reference-layout poses the terms are plain MSEs over all 402 numbers (scores
included, as the original) with the face on the face keypoints' 3 channels, and ``visibility`` is 0.
Inputs are taken as they are: no range guessing (the original's ``transform_if_no_negative``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import Tensor, nn

from mmgt.schema import FACE, NUM_KEYPOINTS

LOSS_KEYS: tuple[str, ...] = ("loss", "position", "velocity", "acceleration", "face", "visibility")


@dataclass(frozen=True)
class PoseLossWeights:
    """Weights of the SMGA loss terms (``face`` multiplies the face position+velocity+acceleration sum)."""

    position: float = 1.0
    velocity: float = 1.0
    acceleration: float = 1.0
    face: float = 3.0
    visibility: float = 1.0


def _masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean of (pred - target)^2 over entries where ``mask`` (broadcast to pred) is 1; 0 if none."""
    mask = mask.expand_as(pred)
    return ((pred - target) ** 2 * mask).sum() / mask.sum().clamp_min(1.0)


def _motion_terms(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Position, velocity, acceleration masked MSEs; pred/target (B, T, ...), mask (B, T, ..., 1)."""
    position = _masked_mse(pred, target, mask)
    vel_pred, vel_target = pred.diff(dim=1), target.diff(dim=1)
    vel_mask = mask[:, 1:] * mask[:, :-1]
    velocity = _masked_mse(vel_pred, vel_target, vel_mask)
    acceleration = _masked_mse(
        vel_pred.diff(dim=1), vel_target.diff(dim=1), vel_mask[:, 1:] * vel_mask[:, :-1]
    )
    return position, velocity, acceleration


def _normalize(model: nn.Module, pose: Tensor) -> Tensor:
    """Model space -> the model's standardised diffusion space (identity for models without one)."""
    return model.normalize_pose(pose) if hasattr(model, "normalize_pose") else pose


def _denormalize(model: nn.Module, pose: Tensor) -> Tensor:
    return model.denormalize_pose(pose) if hasattr(model, "denormalize_pose") else pose


class PoseDiffusion:
    """Noise schedule, losses and sampler of SMGA (holds schedulers only, no parameters).

    Args:
        num_train_timesteps: diffusion steps N (timesteps 0..N-1).
        beta_schedule: diffusers beta schedule; ``"squaredcos_cap_v2"`` is the cosine schedule
            (s = 0.008, betas clipped to 0.999) of the original.
        loss_weights: :class:`PoseLossWeights` or a dict of its fields.
        cond_drop_prob: probability of dropping the audio of a training sample (CFG).
        face_indices: keypoints of the face term; default :data:`mmgt.schema.FACE`.
    """

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_schedule: str = "squaredcos_cap_v2",
        loss_weights: PoseLossWeights | dict = PoseLossWeights(),  # noqa: B008 - frozen dataclass
        cond_drop_prob: float = 0.25,
        face_indices: list[int] | None = None,
    ) -> None:
        if not 0.0 <= cond_drop_prob <= 1.0:
            raise ValueError(f"PoseDiffusion: cond_drop_prob must be in [0, 1], got {cond_drop_prob}")
        self.loss_weights = (
            loss_weights
            if isinstance(loss_weights, PoseLossWeights)
            else PoseLossWeights(**dict(loss_weights))
        )
        self.cond_drop_prob = float(cond_drop_prob)
        self.face_indices = list(FACE) if face_indices is None else [int(i) for i in face_indices]
        self.scheduler = DDPMScheduler(
            num_train_timesteps=num_train_timesteps,
            beta_schedule=beta_schedule,
            prediction_type="sample",
            clip_sample=True,
            clip_sample_range=1.0,
        )

    @property
    def num_train_timesteps(self) -> int:
        """Diffusion steps of training (the scheduler's ``num_train_timesteps``)."""
        return int(self.scheduler.config.num_train_timesteps)

    def ddim_scheduler(self, steps: int) -> DDIMScheduler:
        """A DDIM scheduler with the training betas, set to ``steps`` trailing timesteps."""
        if not 1 <= steps <= self.num_train_timesteps:
            raise ValueError(f"PoseDiffusion: steps must be in 1..{self.num_train_timesteps}, got {steps}")
        scheduler = DDIMScheduler.from_config(  # x0 is clipped in model space by sample(), not here
            self.scheduler.config,
            timestep_spacing="trailing",
            set_alpha_to_one=True,
            steps_offset=0,
            clip_sample=False,
        )
        scheduler.set_timesteps(steps)
        # float64 schedule: with eta = 1 the step computes sqrt(1 - a_prev - sigma^2), mathematically ~a_t
        # (~1e-9 at t = N-1 of the cosine schedule) but negative in float32 round-off -> NaN samples.
        # 0-d float64 factors keep the samples' own dtype.
        scheduler.alphas_cumprod = scheduler.alphas_cumprod.double()
        scheduler.final_alpha_cumprod = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=torch.float64)
        return scheduler

    # ------------------------------------------------------------------ training
    def training_losses(
        self,
        model: nn.Module,
        x0: Tensor,
        audio: Tensor,
        cond_pose: Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """One denoising training step's losses.

        Args:
            model: an :class:`~mmgt.stage1.network.SMGATransformer` (or anything with its forward).
            x0: clean poses (B, T, 134, 3) model space, or (B, T, 402) reference layout.
            audio: (B, T, audio_dim) features.
            cond_pose: (B, 134, 3) or (B, 402), the frame before the window.
            generator: optional RNG for t, noise and the audio-drop draw (on its own device).

        Returns:
            Scalars ``loss`` (weighted sum, differentiable) and the unweighted terms ``position``,
            ``velocity``, ``acceleration``, ``face``, ``visibility``.
        """
        batch, device = x0.shape[0], x0.device
        draw_device = generator.device if generator is not None else device
        timesteps = torch.randint(
            0, self.num_train_timesteps, (batch,), generator=generator, device=draw_device
        ).to(device)
        noise = torch.randn(x0.shape, generator=generator, device=draw_device, dtype=x0.dtype).to(device)
        drop_audio = (torch.rand(batch, generator=generator, device=draw_device) < self.cond_drop_prob).to(
            device
        )
        z0 = _normalize(model, x0)
        noisy = self.scheduler.add_noise(z0, noise, timesteps)
        pred = model(noisy, timesteps, audio, _normalize(model, cond_pose), drop_audio=drop_audio)
        return self.pose_losses(pred, z0)

    def pose_losses(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """The loss terms of predicted vs target x0 (shapes as ``x0`` of :meth:`training_losses`)."""
        face = torch.as_tensor(self.face_indices, device=target.device)
        if target.ndim == 4:  # model space (B, T, K, 3): x, y masked by visibility + visibility term
            visible = target[..., 2:3]
            pred_xy, target_xy = pred[..., :2], target[..., :2]
            position, velocity, acceleration = _motion_terms(pred_xy, target_xy, visible)
            face_terms = _motion_terms(pred_xy[:, :, face], target_xy[:, :, face], visible[:, :, face])
            visibility = ((pred[..., 2] - target[..., 2]) ** 2).mean()
        elif target.ndim == 3:  # reference 402: plain MSE over all numbers
            channels = target.shape[-1] // NUM_KEYPOINTS
            flat_face = (face[:, None] * channels + torch.arange(channels, device=face.device)).reshape(-1)
            ones = torch.ones_like(target[..., :1])
            position, velocity, acceleration = _motion_terms(pred, target, ones)
            face_terms = _motion_terms(pred[..., flat_face], target[..., flat_face], ones)
            visibility = target.new_zeros(())
        else:
            raise ValueError(
                f"PoseDiffusion: x0 must be (B, T, K, 3) or (B, T, 402), got {tuple(target.shape)}"
            )
        face_term = face_terms[0] + face_terms[1] + face_terms[2]
        w = self.loss_weights
        loss = (
            w.position * position
            + w.velocity * velocity
            + w.acceleration * acceleration
            + w.face * face_term
            + w.visibility * visibility
        )
        return {
            "loss": loss,
            "position": position,
            "velocity": velocity,
            "acceleration": acceleration,
            "face": face_term,
            "visibility": visibility,
        }

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(
        self,
        model: nn.Module,
        audio: Tensor,
        cond_pose: Tensor,
        steps: int = 50,
        eta: float = 1.0,
        guidance: float = 2.0,
        generator: torch.Generator | None = None,
        n_frames: int | None = None,
        init_noise: Tensor | None = None,
    ) -> Tensor:
        """DDIM sampling of one window per batch item (put the model in eval mode first).

        Args:
            model: the denoiser.
            audio: (B, T_a, audio_dim) features; the first ``n_frames`` rows are used.
            cond_pose: (B, 134, 3) model space (or (B, 402) for a ``SMGAReferenceTransformer``).
            steps: DDIM steps.
            eta: DDIM stochasticity (0 deterministic, 1 = the original's setting).
            guidance: CFG weight w; 1 = conditional only (one forward per step), 0 = unconditional.
            generator: RNG for the initial noise and the DDIM noise (on the tensors' device).
            n_frames: window length T (default T_a); must be <= T_a.
            init_noise: optional x_T (B, T, ...) instead of drawing it.

        Returns:
            (B, T, 134, 3) model space: x, y clipped to [-1, 1], visibility thresholded at 0.5 to {0, 1}
            and (x, y) of invisible points set to 0. For (B, 402) ``cond_pose`` the raw (B, T, 402).
        """
        batch, audio_frames = audio.shape[:2]
        frames = audio_frames if n_frames is None else int(n_frames)
        if not 1 <= frames <= audio_frames:
            raise ValueError(f"PoseDiffusion.sample: n_frames={frames} but audio has {audio_frames} frames")
        audio = audio[:, :frames]
        shape = (batch, frames, *cond_pose.shape[1:])
        if init_noise is not None:
            if tuple(init_noise.shape) != shape:
                raise ValueError(
                    f"PoseDiffusion.sample: init_noise must be {shape}, got {tuple(init_noise.shape)}"
                )
            x = init_noise.to(device=audio.device, dtype=audio.dtype)
        else:
            x = torch.randn(shape, generator=generator, device=audio.device, dtype=audio.dtype)
        scheduler = self.ddim_scheduler(steps)
        cond_pose = _normalize(model, cond_pose)
        batched = guidance != 1.0
        if batched:
            audio2 = torch.cat([audio, audio])
            cond2 = torch.cat([cond_pose, cond_pose])
            drop2 = torch.cat([torch.zeros(batch, dtype=torch.bool), torch.ones(batch, dtype=torch.bool)])
            drop2 = drop2.to(audio.device)
        for t in scheduler.timesteps:
            timesteps = t.to(audio.device).expand(batch)
            if batched:
                both = model(
                    torch.cat([x, x]), torch.cat([timesteps, timesteps]), audio2, cond2, drop_audio=drop2
                )
                cond_x0, uncond_x0 = both.chunk(2)
                x0 = uncond_x0 + guidance * (cond_x0 - uncond_x0)
            else:
                x0 = model(x, timesteps, audio, cond_pose)
            # clip x0 to the data range in model space (every channel lies in [-1, 1]); the DDIM step then
            # re-derives the noise from the clipped x0 (use_clipped_model_output, as the original)
            x0 = _normalize(model, _denormalize(model, x0).clamp(-1.0, 1.0))
            x = scheduler.step(
                x0, t, x, eta=eta, use_clipped_model_output=True, generator=generator
            ).prev_sample
        x = _denormalize(model, x)
        if x.ndim == 4:
            visible = (x[..., 2:3] > 0.5).to(x.dtype)
            x = torch.cat([x[..., :2].clamp(-1.0, 1.0) * visible, visible], dim=-1)
        return x

    def __repr__(self) -> str:
        return (
            f"PoseDiffusion(num_train_timesteps={self.num_train_timesteps}, "
            f"beta_schedule={self.scheduler.config.beta_schedule!r}, "
            f"loss_weights={asdict(self.loss_weights)}, "
            f"cond_drop_prob={self.cond_drop_prob})"
        )
