"""The released MMGT Stage II: its architecture in our classes, and its state-dict layout mapped onto them.

The authors release ``stage_2/process_1/{denoising_unet,reference_unet,pose_guider}-29580.pth`` (the
image-level state dicts, no prefix; the process-1 denoiser is a 2D UNet without motion or audio modules)
and ``stage_2/process_2/net-32500.pth`` (the whole ``Net``: prefixes ``reference_unet.``,
``denoising_unet.``, ``pose_guider.``, ``audioproj.``). Checked against state dicts and outputs of the
original code (``../shared/fixtures/mmgt_reference``).

Architecture (:func:`release_denoiser`): our :class:`~mmgt.stage2.denoiser.MMGTDenoiser` with the released
variants - :class:`~mmgt.stage2.audio_modules.ReleaseAudioTransformers` (down blocks only),
:class:`~mmgt.stage2.motion_norm.FrameGroupNorm` in the motion modules, the fp16 reference bank, and the
original's training branches (hands, face+hands, lips at 1 : 1 : 1; :data:`RELEASE_INFERENCE` holds the
inference script's 1 + lips, face+hands, lips at 1 : 1 : 2).

Key mapping (ours <- release), everything else identical:

=====================================================  ===================================================
ours                                                   release
=====================================================  ===================================================
reference_net.<k>                                      reference_unet.<k>
denoiser.unet.<k>                                      denoising_unet.<k>
...motion_modules.<j>.<rest>                           ...motion_modules.<j>.temporal_transformer.<rest>
...transformer_blocks.<b>.attn1 / attn2                ...transformer_blocks.<b>.attention_blocks.0 / 1
...transformer_blocks.<b>.norm1 / norm2 / norm3        ...transformer_blocks.<b>.norms.0 / norms.1 / ff_norm
...transformer_blocks.<b>.pos_embed.pe (a buffer)      ...attention_blocks.{0,1}.pos_encoder.pe (both
                                                       checked equal to ours, not copied)
pose_guider.conditioning_embedding.<k>                 pose_guider.<k>
audio_proj.<k>                                         audioproj.<k>
=====================================================  ===================================================

Not in the release (documented, filled by the importer): the ReferenceNet's ``conv_norm_out`` /
``conv_out`` (:data:`REFERENCE_NET_NOT_RELEASED`; unused by the reference states, taken from the SD-1.5
UNet); for process 1 alone also the motion modules, audio modules and audio projection
(:data:`PROCESS1_NOT_RELEASED`: fresh or from an AnimateDiff folder). Any other missing, unexpected or
mis-shaped key is an error listing them. Values are cast to the model's dtype (the release stores fp16).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmgt.stage2.audio_modules import ReleaseAudioTransformers
from mmgt.stage2.motion_norm import FrameGroupNorm

RELEASE_PREFIXES: dict[str, str] = {
    "reference_net": "reference_unet.",
    "denoiser": "denoising_unet.",
    "pose_guider": "pose_guider.",
    "audio_proj": "audioproj.",
}
"""Our component -> its prefix in ``net-32500.pth``."""

PROCESS1_FILES: dict[str, str] = {
    "denoiser": "denoising_unet",
    "reference_net": "reference_unet",
    "pose_guider": "pose_guider",
}
"""Our component -> the stem of its ``stage_2/process_1/<stem>-<step>.pth`` file."""

REFERENCE_NET_NOT_RELEASED: tuple[str, ...] = (r"conv_norm_out\.", r"conv_out\.")
"""ReferenceNet parameters absent from the release (the original ReferenceNet has no output head)."""

PROCESS1_NOT_RELEASED: tuple[str, ...] = (r"\.motion_modules\.", r"\.audio_modules\.")
"""Denoiser parameters a process-1 (image-level) release file does not hold."""

RELEASE_TRAINING: dict[str, Any] = {
    "audio_branches": ["hands", "face_hands", "lips"],
    "motion_scale": [1.0, 1.0, 1.0],
}
"""The original's training: branch 0 = the hands mask (its loader), weights 1 : 1 : 1 (the non-checkpointed
forward never passes ``motion_scale``)."""

RELEASE_INFERENCE: dict[str, Any] = {
    "audio_branches": ["full_plus_lips", "face_hands", "lips"],
    "motion_scale": [1.0, 1.0, 2.0],
}
"""The original inference script: branch 0 = 1 + lips, weights 1 : 1 : 2 (they take effect in the
checkpointed train-mode path it runs)."""

RELEASE_DENOISER: dict[str, Any] = {
    "audio_placement": ["down"],
    "audio_module": ReleaseAudioTransformers().config(),
    "motion_norm": {"_target_": f"{FrameGroupNorm.__module__}.{FrameGroupNorm.__qualname__}"},
    "reference_dtype": "float16",
    **RELEASE_TRAINING,
}
"""``MMGTDenoiser`` arguments of the released variant (besides the UNet config and the audio width)."""

SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "center_input_sample": False,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
"""``stable-diffusion-v1-5/unet/config.json`` (the UNet the release was trained from)."""

MM_SD_V15_V2: dict[str, Any] = {"motion_num_attention_heads": 8, "motion_max_seq_length": 32}
"""AnimateDiff ``mm_sd_v15_v2`` motion-module settings the release uses (not recoverable from weights)."""


def motion_adapter_config(
    unet_config: Mapping[str, Any], heads: int = 8, max_seq_length: int = 32, mid_block: bool = True
) -> dict[str, Any]:
    """``MotionAdapter`` arguments of AnimateDiff-v2-style motion modules for an SD-style UNet config."""
    return {
        "block_out_channels": list(unet_config["block_out_channels"]),
        "motion_layers_per_block": int(unet_config.get("layers_per_block", 2)),
        "motion_mid_block_layers_per_block": 1,
        "motion_num_attention_heads": int(heads),
        "motion_norm_num_groups": int(unet_config.get("norm_num_groups", 32)),
        "motion_max_seq_length": int(max_seq_length),
        "use_motion_mid_block": bool(mid_block),
    }


def release_denoiser(
    unet_config: Mapping[str, Any],
    audio_dim: int,
    motion_adapter: Mapping[str, Any] | str | None = None,
    motion_heads: int = 8,
    motion_max_seq_length: int = 32,
    **overrides: Any,
):  # noqa: ANN201 - MMGTDenoiser (imported lazily: loading imports this module's users)
    """The released denoiser architecture: an SD-style UNet config + motion modules + the release variants.

    ``motion_adapter``: a ``MotionAdapter`` folder (pretrained AnimateDiff weights) or config; None = fresh
    AnimateDiff-v2-style modules with ``motion_heads`` / ``motion_max_seq_length``.
    """
    from mmgt.stage2.loading import build_denoiser

    adapter = motion_adapter or motion_adapter_config(unet_config, motion_heads, motion_max_seq_length)
    return build_denoiser(
        config=unet_config, motion_adapter=adapter, audio_dim=audio_dim, **{**RELEASE_DENOISER, **overrides}
    )


# --------------------------------------------------------------------------- key mapping
_MOTION_RULES: tuple[tuple[str, str], ...] = (
    (r"transformer_blocks\.(\d+)\.attn1\.(.+)", r"transformer_blocks.\1.attention_blocks.0.\2"),
    (r"transformer_blocks\.(\d+)\.attn2\.(.+)", r"transformer_blocks.\1.attention_blocks.1.\2"),
    (r"transformer_blocks\.(\d+)\.norm1\.(.+)", r"transformer_blocks.\1.norms.0.\2"),
    (r"transformer_blocks\.(\d+)\.norm2\.(.+)", r"transformer_blocks.\1.norms.1.\2"),
    (r"transformer_blocks\.(\d+)\.norm3\.(.+)", r"transformer_blocks.\1.ff_norm.\2"),
)
_MOTION = re.compile(r"(?P<pre>.*motion_modules\.\d+)\.(?P<rest>.+)")
_PE = re.compile(r"(?P<pre>.*motion_modules\.\d+)\.transformer_blocks\.(?P<b>\d+)\.pos_embed\.pe")


def release_unet_key(key: str) -> str:
    """Release key of a ``UNetMotionModel`` key (``denoiser.unet.<key>`` without the prefix)."""
    m = _MOTION.fullmatch(key)
    if m is None:
        return key
    rest = m["rest"]
    for pattern, template in _MOTION_RULES:
        if re.fullmatch(pattern, rest):
            rest = re.sub(pattern, template, rest)
            break
    return f"{m['pre']}.temporal_transformer.{rest}"


def _release_pe_keys(key: str) -> list[str] | None:
    m = _PE.fullmatch(key)
    if m is None:
        return None
    base = f"{m['pre']}.temporal_transformer.transformer_blocks.{m['b']}.attention_blocks"
    return [f"{base}.{i}.pos_encoder.pe" for i in (0, 1)]


def _denoiser_key(key: str) -> str:
    if not key.startswith("unet."):
        raise KeyError(f"denoiser key {key!r} outside .unet")
    return release_unet_key(key.removeprefix("unet."))


RELEASE_KEY: dict[str, Callable[[str], str]] = {
    "reference_net": lambda k: k,
    "denoiser": _denoiser_key,
    "pose_guider": lambda k: k.removeprefix("conditioning_embedding."),
    "audio_proj": lambda k: k,
}
"""Our component -> (its state-dict key -> the release key, without the ``net`` prefix)."""


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(re.search(p, key) for p in patterns)


def convert_component(
    name: str,
    release: Mapping[str, Tensor],
    model: nn.Module,
    source: str,
    not_released: Sequence[str] = (),
    supplied: Mapping[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], list[str]]:
    """A release state dict (no prefix) -> a state dict for our component ``model`` (strict).

    Args:
        name: the component (``reference_net``, ``denoiser``, ``pose_guider``, ``audio_proj``).
        release: the release state dict of that component.
        model: our component, whose keys and shapes the result must match.
        not_released: patterns of our keys the release does not hold; they come from ``supplied`` (or, if
            absent there, keep the model's current values).
        source: file name for the error message.
        supplied: our-key tensors for the ``not_released`` keys.

    Returns:
        (state dict, problems): problems list every missing, unexpected or mis-shaped key; the caller
        raises with all components' problems together.
    """
    to_release = RELEASE_KEY[name]
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    problems: list[str] = []
    for key, target in model.state_dict().items():
        if _matches(key, not_released):
            value = (supplied or {}).get(key, target)
            if value.shape != target.shape:
                problems.append(
                    f"{source}: supplied {key} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
                )
            out[key] = value.to(target.dtype)
            continue
        pe_keys = _release_pe_keys(key.removeprefix("unet.")) if name == "denoiser" else None
        if pe_keys is not None:  # a computed buffer: the release's copies must equal it
            for ref in pe_keys:
                if ref not in release:
                    problems.append(f"{source}: missing {ref}")
                    continue
                used.add(ref)
                value = release[ref]
                meta = value.is_meta or target.is_meta  # shapes only (the key-list check)
                same = meta or torch.allclose(value.float(), target.float(), atol=1e-3)
                if value.shape != target.shape or not same:
                    problems.append(f"{source}: {ref} is not the sinusoid of {key} {tuple(target.shape)}")
            out[key] = target
            continue
        ref = to_release(key)
        if ref not in release:
            problems.append(f"{source}: missing {ref} (for {name}.{key})")
            continue
        used.add(ref)
        value = release[ref]
        if value.shape != target.shape:
            problems.append(
                f"{source}: {ref} has shape {tuple(value.shape)}, expected {tuple(target.shape)} "
                f"({name}.{key})"
            )
            continue
        out[key] = value.to(target.dtype)
    problems += [f"{source}: unexpected {k}" for k in release if k not in used]
    return out, problems


def split_net(net: Mapping[str, Tensor], source: str) -> dict[str, dict[str, Tensor]]:
    """``net-<step>.pth`` -> {component: its release state dict without prefix}; unknown prefixes raise."""
    parts: dict[str, dict[str, Tensor]] = {name: {} for name in RELEASE_PREFIXES}
    unknown = []
    for key, value in net.items():
        for name, prefix in RELEASE_PREFIXES.items():
            if key.startswith(prefix):
                parts[name][key.removeprefix(prefix)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(
            f"{source}: keys outside {sorted(RELEASE_PREFIXES.values())}: {unknown[:8]}"
            + (f" ... ({len(unknown)})" if len(unknown) > 8 else "")
        )
    empty = [RELEASE_PREFIXES[n] for n, sd in parts.items() if not sd]
    if empty:
        raise ValueError(f"{source}: not a process-2 Net state dict (no {', '.join(empty)} keys)")
    return parts


def load_release_components(
    components: Mapping[str, nn.Module],
    release: Mapping[str, Mapping[str, Tensor]],
    sources: Mapping[str, str],
    not_released: Mapping[str, Sequence[str]] | None = None,
    supplied: Mapping[str, Mapping[str, Tensor]] | None = None,
) -> None:
    """Load release state dicts into our components strictly; one error lists every problem.

    Args:
        components: our component name -> module (``reference_net``, ``denoiser``, ...).
        release: the same names -> release state dicts (no prefix).
        sources: the same names -> file names (for the error message).
        not_released: per component, see :func:`convert_component`.
        supplied: per component, see :func:`convert_component`.
    """
    problems: list[str] = []
    converted = {}
    for name, model in components.items():
        converted[name], found = convert_component(
            name,
            release[name],
            model,
            sources[name],
            (not_released or {}).get(name, ()),
            (supplied or {}).get(name),
        )
        problems += found
    if problems:
        shown = "\n  ".join(problems[:20]) + (
            f"\n  ... ({len(problems)} problems)" if len(problems) > 20 else ""
        )
        raise ValueError(f"not the released MMGT layout for this architecture:\n  {shown}")
    for name, model in components.items():
        model.load_state_dict(converted[name])


__all__ = [
    "MM_SD_V15_V2",
    "PROCESS1_FILES",
    "PROCESS1_NOT_RELEASED",
    "REFERENCE_NET_NOT_RELEASED",
    "RELEASE_DENOISER",
    "RELEASE_INFERENCE",
    "RELEASE_PREFIXES",
    "RELEASE_TRAINING",
    "SD15_UNET_CONFIG",
    "convert_component",
    "load_release_components",
    "motion_adapter_config",
    "release_denoiser",
    "release_unet_key",
    "split_net",
]
