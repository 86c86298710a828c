"""ModelTesterMixin on every Stage II network at tiny sizes: output shape, determinism, save/load round trip
and gradient reach (denoiser, ReferenceNet, PoseGuider, AudioProjModel, the toy VAE architecture).

Zero-initialised outputs (motion modules' ``proj_out``, audio branches' ``to_out``, the PoseGuider's
``conv_out``) block every gradient behind them at initialisation, so the gradient check runs on weights
where they are randomised, as after some training."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from torch import Tensor, nn

from mmgt.stage2.attention import RegionMasks, Stage2AttentionContext, mask_regions_of
from mmgt.stage2.audio_proj import AudioProjModel
from mmgt.stage2.denoiser import MMGTDenoiser
from mmgt.stage2.loading import build_denoiser
from mmgt.stage2.pose_guider import PoseGuider
from mmgt.stage2.reference_net import ReferenceNet
from tests.helpers.model_tester import ModelTesterMixin
from tests.unit.mmgt.stage2.test_denoiser import tiny

B, F, S = 1, 2, 8  # batch, frames, latent side
BRANCHES = ("background", "face_hands", "lips")
TINY = tiny()  # conf/model/stage2/scale/tiny.yaml, read once


def _randomize(model: nn.Module, *parts: str) -> None:
    """Seeded random weights for the parameters whose names contain one of ``parts``."""
    g = torch.Generator().manual_seed(5)
    for name, p in model.named_parameters():
        if any(part in name for part in parts):
            p.data = torch.randn(p.shape, generator=g) * 0.1


class TestDenoiser(ModelTesterMixin):
    def make_model(self) -> MMGTDenoiser:
        t = TINY["denoiser"]
        torch.manual_seed(0)
        den = build_denoiser(
            config=t["config"],
            motion_adapter=t["motion_adapter"],
            audio_dim=t["audio_dim"],
            audio_branches=BRANCHES,
        )
        _randomize(den, ".processor.branches.", "proj_out")
        return den

    def make_inputs(self) -> dict[str, Any]:
        t = tiny()
        channels, width = t["reference_net"]["config"]["block_out_channels"][0], t["audio_proj"]["token_dim"]
        g = torch.Generator().manual_seed(0)
        regions = mask_regions_of(BRANCHES)
        levels = [torch.rand(B * F, len(regions), s, s, generator=g) for s in (S, S // 2)]
        context = Stage2AttentionContext(
            audio_tokens=torch.randn(B * F, 4, width, generator=g), region_masks=RegionMasks(regions, levels)
        )
        return {
            "sample": torch.randn(B, 4, F, S, S, generator=g),
            "timestep": torch.tensor([500]),
            "encoder_hidden_states": torch.randn(
                B, 1, t["reference_net"]["config"]["cross_attention_dim"], generator=g
            ),
            "pose_features": torch.randn(B, channels, F, S, S, generator=g),
            "context": context,
        }

    def expected_shape(self, inputs: dict[str, Any]) -> tuple[int, ...]:
        return tuple(inputs["sample"].shape)


class TestReferenceNet(ModelTesterMixin):
    """The output is what the denoiser reads: every written state, flattened and joined (B, sum L * C)."""

    def make_model(self) -> ReferenceNet:
        torch.manual_seed(0)
        net = ReferenceNet(**TINY["reference_net"]["config"])
        for name in net.unused_parameter_names():  # frozen in training too (no influence on the states)
            net.get_parameter(name).requires_grad_(False)
        return net

    def make_inputs(self) -> dict[str, Any]:
        g = torch.Generator().manual_seed(0)
        dim = TINY["reference_net"]["config"]["cross_attention_dim"]
        return {
            "latents": torch.randn(B, 4, S, S, generator=g),
            "encoder_hidden_states": torch.randn(B, 1, dim, generator=g),
        }

    def output(self, model: nn.Module, inputs: dict[str, Any]) -> Tensor:
        states = model.write_states(**inputs)
        return torch.cat([v.flatten(1) for v in states.values()], dim=1)

    def expected_shape(self, inputs: dict[str, Any]) -> tuple[int, ...]:
        cfg = TINY["reference_net"]["config"]  # 2 levels (32 ch at 8^2, 64 ch at 4^2), 1 layer per block
        level = [w * (S // 2**i) ** 2 for i, w in enumerate(cfg["block_out_channels"])]
        layers = cfg["layers_per_block"]
        return (B, layers * sum(level) + level[-1] + (layers + 1) * sum(level))  # down + mid + up


class TestPoseGuider(ModelTesterMixin):
    def make_model(self) -> PoseGuider:
        torch.manual_seed(0)
        t = TINY["pose_guider"]
        guider = PoseGuider(out_channels=t["out_channels"], block_out_channels=t["block_out_channels"])
        _randomize(guider, "conv_out")
        return guider

    def make_inputs(self) -> dict[str, Any]:
        return {"pose": torch.rand(B, 3, F, 4 * S, 4 * S, generator=torch.Generator().manual_seed(0))}

    def expected_shape(self, inputs: dict[str, Any]) -> tuple[int, ...]:
        return (B, TINY["pose_guider"]["out_channels"], F, S, S)


class TestAudioProj(ModelTesterMixin):
    def make_model(self) -> AudioProjModel:
        torch.manual_seed(0)
        t = TINY["audio_proj"]
        proj = AudioProjModel(
            window=5, audio_layers=2, audio_dim=8, hidden_dim=16, tokens=t["tokens"], token_dim=t["token_dim"]
        )
        _randomize(proj, "norm")  # unit LayerNorm weights: the output's sum would not depend on the input
        return proj

    def make_inputs(self) -> dict[str, Any]:
        return {"audio": torch.randn(B, F, 5, 2, 8, generator=torch.Generator().manual_seed(0))}

    def expected_shape(self, inputs: dict[str, Any]) -> tuple[int, ...]:
        t = TINY["audio_proj"]
        return (B, F, t["tokens"], t["token_dim"])


class TestToyVAE(ModelTesterMixin):
    """The tiny scale's VAE architecture (what the toy VAE is fitted with), posterior mean decoded."""

    def make_model(self) -> AutoencoderKL:
        torch.manual_seed(0)
        return AutoencoderKL(**TINY["vae"]["config"])

    def make_inputs(self) -> dict[str, Any]:
        return {"sample": torch.rand(B, 3, 4 * S, 4 * S, generator=torch.Generator().manual_seed(0)) * 2 - 1}

    def expected_shape(self, inputs: dict[str, Any]) -> tuple[int, ...]:
        return tuple(inputs["sample"].shape)
