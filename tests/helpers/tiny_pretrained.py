"""Tiny random stand-ins of the pretrained folders the MMGT release needs, sized from the reference fixtures.

``python -m tests.helpers.tiny_pretrained <fixtures> <out>`` writes, in the usual layout
(:data:`mmgt.stage2.loading.EXPECTED_LAYOUT`, plus ``wavlm-large``), ``save_pretrained`` folders of random
models whose sizes match ``<fixtures>/stage2_tiny`` and ``stage1_tiny`` (their ``config`` entries): the
SD-style UNet (the fixture's UNet config), a VAE with the UNet's latent channels and 8x downsampling, a CLIP
image encoder projecting to the cross-attention width, AnimateDiff-style motion modules, a ControlNet whose
hint encoder has the PoseGuider's widths, wav2vec2 with the fixture's audio layers x width, WavLM whose
last layer plus the 35 weight-free features give the Stage I audio width. Used by the tests and by the
tiny walk-through in docs/reproduce-mmgt.md (random weights: the outputs are noise, the wiring is real).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

STAGE1_WEIGHT_FREE_DIMS = 35
"""Width of the weight-free part of the release's Stage I audio features (mmgt.release.stage1_audio_spec)."""


def fixture_configs(fixtures: Path) -> dict[str, Any]:
    """``stage2`` (the Stage II io file's config) and ``stage1`` (the Stage I one) of a fixture folder."""
    s2 = torch.load(fixtures / "stage2_tiny" / "stage2_tiny_orig_io.pt", weights_only=True)["config"]
    s1 = torch.load(fixtures / "stage1_tiny" / "smga_tiny_orig_io.pt", weights_only=True)["config"]
    return {"stage2": json.loads(s2) if isinstance(s2, str) else dict(s2), "stage1": dict(s1)}


def write_tiny_pretrained(fixtures: str | Path, out: str | Path, seed: int = 0) -> Path:
    """Write the stand-in folders into ``out`` (see the module docstring); returns ``out``."""
    import transformers
    from diffusers import AutoencoderKL, ControlNetModel, MotionAdapter, UNet2DConditionModel

    from mmgt.schema import SAMPLE_RATE
    from mmgt.stage2.loading import EXPECTED_LAYOUT
    from mmgt.stage2.release import motion_adapter_config

    cfg = fixture_configs(Path(fixtures))
    unet = cfg["stage2"]["unet"]
    extra = cfg["stage2"]["unet_additional_kwargs"]
    motion = extra["motion_module_kwargs"]
    pose, proj = cfg["stage2"]["pose_guider"], cfg["stage2"]["audio_proj"]
    root = Path(out)
    torch.manual_seed(seed)
    UNet2DConditionModel(**unet).save_pretrained(root / EXPECTED_LAYOUT["unet"][0])
    n_down = len(pose["block_out_channels"])  # the PoseGuider's downsampling = the VAE's
    AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * n_down,
        up_block_types=["UpDecoderBlock2D"] * n_down,
        block_out_channels=[16] * n_down,
        layers_per_block=1,
        latent_channels=int(unet["in_channels"]),
        norm_num_groups=8,
        mid_block_add_attention=False,
    ).save_pretrained(root / EXPECTED_LAYOUT["vae"][0])
    clip = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=int(unet["cross_attention_dim"]),
    )
    transformers.CLIPVisionModelWithProjection(clip).save_pretrained(
        root / EXPECTED_LAYOUT["image_encoder"][0]
    )
    adapter = MotionAdapter(
        **motion_adapter_config(
            unet,
            heads=int(motion["num_attention_heads"]),
            max_seq_length=int(motion["temporal_position_encoding_max_len"]),
            mid_block=bool(extra.get("motion_module_mid_block", True)),
        )
    )
    adapter.save_pretrained(root / EXPECTED_LAYOUT["motion_adapter"][0])
    ControlNetModel(
        block_out_channels=unet["block_out_channels"],
        down_block_types=unet["down_block_types"],
        layers_per_block=int(unet["layers_per_block"]),
        cross_attention_dim=int(unet["cross_attention_dim"]),
        attention_head_dim=unet["attention_head_dim"],
        norm_num_groups=int(unet["norm_num_groups"]),
        conditioning_embedding_out_channels=pose["block_out_channels"],
    ).save_pretrained(root / EXPECTED_LAYOUT["controlnet"][0])
    speech = {
        "num_attention_heads": 2,
        "conv_dim": (16, 16, 16),
        "conv_kernel": (10, 7, 10),  # receptive field 400 samples, stride 320 (50 Hz), like the real CNN
        "conv_stride": (5, 8, 8),
        "num_conv_pos_embeddings": 16,
        "vocab_size": 8,
    }
    w2v = root / EXPECTED_LAYOUT["speech_encoder"][0]
    transformers.Wav2Vec2Model(
        transformers.Wav2Vec2Config(
            hidden_size=int(proj["channels"]),
            num_hidden_layers=int(proj["blocks"]),
            intermediate_size=16,
            num_conv_pos_embedding_groups=2,
            **speech,
        )
    ).save_pretrained(w2v)
    wavlm = root / "wavlm-large"
    transformers.WavLMModel(
        transformers.WavLMConfig(
            hidden_size=int(cfg["stage1"]["cond_feature_dim"]) - STAGE1_WEIGHT_FREE_DIMS,
            num_hidden_layers=1,
            intermediate_size=64,
            num_conv_pos_embedding_groups=16,
            do_stable_layer_norm=True,
            **speech,
        )
    ).save_pretrained(wavlm)
    for folder in (w2v, wavlm):
        transformers.Wav2Vec2FeatureExtractor(do_normalize=True, sampling_rate=SAMPLE_RATE).save_pretrained(
            folder
        )
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fixtures", help="the mmgt_reference fixture folder")
    parser.add_argument("out", help="where to write the pretrained folders")
    args = parser.parse_args(argv)
    print(write_tiny_pretrained(args.fixtures, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
