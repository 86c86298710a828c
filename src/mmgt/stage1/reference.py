"""Reference compatibility: the original MMGT Stage-I checkpoint layout mapped onto :class:`SMGATransformer`.

The authors release ``MMGT_pretrained/stage_1/audio2pose_best_model.pt``, written by their trainer as
``torch.save({"ema_state_dict": ..., "model_state_dict": ..., "optimizer_state_dict": ..., "epoch": n})``
where both state dicts are those of their ``GestureDecoder`` (no prefix; ``module.`` if saved from a
DDP wrapper); inference loads ``ema_state_dict``. The key names below follow the module names of
``GestureDecoder`` in the published source (``src/audio2pose_model/model.py``: attribute names,
``nn.MultiheadAttention`` packing q/k/v in ``in_proj_weight``, ``nn.Sequential`` indices). The
checkpoint itself cannot be downloaded here, so the mapping is derived from that source layout and
tested on state dicts written in it (round trip), not on the released file.

Mapping (``i`` = layer index, ``s`` in {face, body}; MHA = ``in_proj_weight``/``in_proj_bias`` rows
[0:W] -> ``to_q``, [W:2W] -> ``to_k``, [2W:3W] -> ``to_v``; ``out_proj`` -> ``to_out``):

===================================================  ===================================================
reference (``GestureDecoder``)                       ``SMGATransformer``
===================================================  ===================================================
input_projection                                     pose_in
cond_projection                                      audio_in
cond_encoder.{i}.self_attn (MHA)                     audio_encoder.{i}.self_attn
cond_encoder.{i}.norm1 / norm2                       audio_encoder.{i}.norm1 / norm2
cond_encoder.{i}.linear1 / linear2                   audio_encoder.{i}.ff.linear1 / linear2
null_cond_embed / null_cond_hidden                   null_audio_tokens / null_audio_hidden
non_attn_cond_projection.{0,1,3}                     audio_pool.{0,1,3}
time_mlp.1 / to_time_cond.0 / to_time_tokens.0       time_mlp / time_to_film / time_to_tokens
norm_cond                                            memory_norm
seqTransDecoder.stack.{i}.{s}_self_attn (MHA)        decoder_layers.{i}.{s}.self_attn
seqTransDecoder.stack.{i}.{s}_cross_attn (MHA)       decoder_layers.{i}.{s}.cross_attn
seqTransDecoder.stack.{i}.norm_{s}_1 / norm_{s}_2    decoder_layers.{i}.{s}.norm1 / norm2
seqTransDecoder.stack.{i}.film_{s}_{1,2}.block.1     decoder_layers.{i}.{s}.film{1,2}.proj
seqTransDecoder.stack.{i}.norm_final                 decoder_layers.{i}.merge_norm
seqTransDecoder.stack.{i}.linear1 / linear2          decoder_layers.{i}.merge_ff.linear1 / linear2
seqTransDecoder.stack.{i}.film_final.block.1         decoder_layers.{i}.merge_film.proj
final_layer                                          pose_out
===================================================  ===================================================

Ignored reference keys (modules the original creates but never uses): ``stack.{i}.self_attn.*``,
``stack.{i}.norm_{s}_3.*``, ``stack.{i}.film_{s}_3.*``; and the rotary buffers ``*rotary.freqs``
(checked against the frequencies :class:`SMGATransformer` computes). Everything else must match:
missing, unexpected or mis-shaped keys raise.

The loaded network is a :class:`~mmgt.stage1.network.SMGAReferenceTransformer` (402-d input with the
original normalisation, :func:`mmgt.schema.to_reference_402`) with the reference choices
(:data:`REFERENCE_VARIANT`: the original stacking and rotary placement); sizes (width, layers, ff,
audio dim, window) are read from the weights, the number of heads (not recoverable from weights) is an
argument (8 in the release).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from mmgt.schema import KEYPOINT_DIMS
from mmgt.stage1.network import SMGAReferenceTransformer, SMGATransformer
from mmgt.stage1.positions import rotary_angles

REFERENCE_VARIANT: dict[str, object] = {
    "stacking": "reference",
    "positional": "rope_inputs",
    "rotary_theta": 10000.0,
}
"""The choices that make :class:`SMGAReferenceTransformer` compute what ``GestureDecoder`` computes."""

_STACK = "seqTransDecoder.stack"
# (SMGATransformer key pattern, reference key template); attention modules map through _ATTENTION.
_RULES: tuple[tuple[str, str], ...] = (
    (r"pose_in\.(weight|bias)", r"input_projection.\1"),
    (r"audio_in\.(weight|bias)", r"cond_projection.\1"),
    (r"audio_encoder\.(\d+)\.(norm1|norm2)\.(weight|bias)", r"cond_encoder.\1.\2.\3"),
    (r"audio_encoder\.(\d+)\.ff\.(linear1|linear2)\.(weight|bias)", r"cond_encoder.\1.\2.\3"),
    (r"audio_encoder\.(\d+)\.self_attn\.(.+)", r"cond_encoder.\1.self_attn.\2"),
    (r"null_audio_tokens", r"null_cond_embed"),
    (r"null_audio_hidden", r"null_cond_hidden"),
    (r"audio_pool\.([013])\.(weight|bias)", r"non_attn_cond_projection.\1.\2"),
    (r"time_mlp\.(weight|bias)", r"time_mlp.1.\1"),
    (r"time_to_film\.(weight|bias)", r"to_time_cond.0.\1"),
    (r"time_to_tokens\.(weight|bias)", r"to_time_tokens.0.\1"),
    (r"memory_norm\.(weight|bias)", r"norm_cond.\1"),
    (r"decoder_layers\.(\d+)\.(face|body)\.norm([12])\.(weight|bias)", _STACK + r".\1.norm_\2_\3.\4"),
    (
        r"decoder_layers\.(\d+)\.(face|body)\.film([12])\.proj\.(weight|bias)",
        _STACK + r".\1.film_\2_\3.block.1.\4",
    ),
    (r"decoder_layers\.(\d+)\.(face|body)\.(self_attn|cross_attn)\.(.+)", _STACK + r".\1.\2_\3.\4"),
    (r"decoder_layers\.(\d+)\.merge_norm\.(weight|bias)", _STACK + r".\1.norm_final.\2"),
    (r"decoder_layers\.(\d+)\.merge_ff\.(linear1|linear2)\.(weight|bias)", _STACK + r".\1.\2.\3"),
    (r"decoder_layers\.(\d+)\.merge_film\.proj\.(weight|bias)", _STACK + r".\1.film_final.block.1.\2"),
    (r"pose_out\.(weight|bias)", r"final_layer.\1"),
)
_ATTENTION = re.compile(r"(.+(?:self_attn|cross_attn))\.(to_q|to_k|to_v|to_out)\.(weight|bias)")
_QKV_INDEX = {"to_q": 0, "to_k": 1, "to_v": 2}
_IGNORED = re.compile(
    _STACK.replace(".", r"\.") + r"\.\d+\.(?:self_attn\..+|norm_(?:face|body)_3\..+|film_(?:face|body)_3\..+)"
    r"|(?:.+\.)?rotary\.freqs"
)
"""Reference keys of modules the original creates but never uses, and its rotary frequency buffers."""


_NOT_IN_REFERENCE = ("audio_mean", "audio_std", "pose_mean", "pose_std")
"""Buffers the original has no counterpart for: the audio and pose standardisation (identity when loading
a reference checkpoint; the audio one is folded into ``cond_projection`` when writing one, the pose one
must be the identity then - the original diffuses the unstandardised 402-d vector)."""


def reference_key(key: str) -> tuple[str, int | None]:
    """Reference key of an :class:`SMGATransformer` state-dict ``key``, and its q/k/v chunk (0-2) or None."""
    for pattern, template in _RULES:
        match = re.fullmatch(pattern, key)
        if match is None:
            continue
        mapped = match.expand(template)
        attention = _ATTENTION.fullmatch(mapped)
        if attention is None:
            return mapped, None
        prefix, proj, kind = attention.groups()
        if proj == "to_out":
            return f"{prefix}.out_proj.{kind}", None
        return f"{prefix}.in_proj_{kind}", _QKV_INDEX[proj]
    raise KeyError(f"no reference-layout mapping for SMGATransformer key {key!r}")


def to_reference_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:class:`SMGATransformer` state dict -> the ``GestureDecoder`` layout (used keys only; q/k/v packed)."""
    out: dict[str, Tensor] = {}
    packed: dict[str, list[Tensor | None]] = {}
    state_dict = dict(state_dict)
    pose_mean, pose_std = state_dict.pop("pose_mean", None), state_dict.pop("pose_std", None)
    if (pose_mean is not None and bool(pose_mean.abs().max() > 0)) or (
        pose_std is not None and bool((pose_std - 1).abs().max() > 0)
    ):
        raise ValueError(
            "to_reference_state_dict: the network standardises poses (set_pose_stats); the original layout "
            "diffuses unstandardised poses, so it cannot hold this network"
        )
    mean, std = state_dict.pop("audio_mean", None), state_dict.pop("audio_std", None)
    if mean is not None and std is not None:  # W ((a - m) / s) + b = (W / s) a + (b - W (m / s))
        weight, bias = state_dict["audio_in.weight"], state_dict["audio_in.bias"]
        state_dict["audio_in.weight"] = weight / std[None, :]
        state_dict["audio_in.bias"] = bias - weight @ (mean / std)
    for key, value in state_dict.items():
        ref, chunk = reference_key(key)
        if chunk is None:
            out[ref] = value
        else:
            packed.setdefault(ref, [None, None, None])[chunk] = value
    for ref, parts in packed.items():
        if any(p is None for p in parts):
            raise KeyError(f"incomplete q/k/v for {ref}")
        out[ref] = torch.cat(parts, dim=0)  # type: ignore[arg-type]
    return out


def from_reference_state_dict(
    reference: Mapping[str, Tensor], model: SMGATransformer, source: str = "state dict"
) -> dict[str, Tensor]:
    """``GestureDecoder`` state dict -> a state dict for ``model`` (strict: raises naming ``source``)."""
    out: dict[str, Tensor] = {}
    used: set[str] = set()
    problems: list[str] = []
    for key, target in model.state_dict().items():
        if key in _NOT_IN_REFERENCE:  # identity standardisation
            out[key] = torch.zeros_like(target) if key.endswith("_mean") else torch.ones_like(target)
            continue
        ref, chunk = reference_key(key)
        used.add(ref)
        value = _reference_value(reference, ref, chunk, model.config.width, problems)
        if value is None:
            continue
        if value.shape != target.shape:
            problems.append(f"{ref}: shape {tuple(value.shape)}, expected {tuple(target.shape)} for {key}")
            continue
        out[key] = value.to(target.dtype).clone()
    problems += _unused_reference_problems(reference, used, model.config.width, model.config.rotary_theta)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; ... ({len(problems)} problems)" if len(problems) > 8 else "")
        raise ValueError(f"{source}: not a GestureDecoder checkpoint matching this layout: {shown}")
    return out


def _reference_value(
    reference: Mapping[str, Tensor], ref: str, chunk: int | None, width: int, problems: list[str]
) -> Tensor | None:
    """The reference tensor ``ref`` (its q/k/v ``chunk`` of packed rows), or None with a problem noted."""
    if ref not in reference:
        problems.append(f"missing {ref}")
        return None
    value = reference[ref]
    if chunk is None:
        return value
    if value.shape[0] != 3 * width:
        problems.append(f"{ref}: expected {3 * width} packed rows, got {tuple(value.shape)}")
        return None
    return value[chunk * width : (chunk + 1) * width]


def _unused_reference_problems(
    reference: Mapping[str, Tensor], used: set[str], width: int, theta: float
) -> list[str]:
    """Reference keys no parameter took: unexpected unless ignored; rotary buffers checked by value."""
    expected_freqs = rotary_angles(torch.ones(1), width, theta)[0]
    problems = []
    for ref, value in reference.items():
        if ref in used:
            continue
        if not _IGNORED.fullmatch(ref):
            problems.append(f"unexpected {ref}")
        elif ref.endswith("rotary.freqs") and (
            value.shape != expected_freqs.shape
            or not torch.allclose(value.float(), expected_freqs, rtol=1e-5)
        ):
            problems.append(f"{ref}: rotary frequencies differ from dim={width}, theta=10000")
    return problems


def reference_config(reference: Mapping[str, Tensor], heads: int = 8, source: str = "state dict") -> dict:
    """:class:`SMGAReferenceTransformer` constructor arguments read from a ``GestureDecoder`` state dict."""
    try:
        width, double_pose = reference["input_projection.weight"].shape
        audio_dim = reference["cond_projection.weight"].shape[1]
        window = reference["null_cond_embed"].shape[1]
        ff_dim = reference["cond_encoder.0.linear1.weight"].shape[0]
    except KeyError as err:
        raise ValueError(f"{source}: not a GestureDecoder state dict (no {err.args[0]})") from None
    pose_dim = double_pose // 2
    if pose_dim % KEYPOINT_DIMS:
        raise ValueError(f"{source}: pose size {pose_dim} is not a multiple of {KEYPOINT_DIMS}")
    layers = len(
        {int(m.group(1)) for k in reference if (m := re.match(_STACK.replace(".", r"\.") + r"\.(\d+)\.", k))}
    )
    audio_layers = len({int(m.group(1)) for k in reference if (m := re.match(r"cond_encoder\.(\d+)\.", k))})
    return {
        "audio_dim": int(audio_dim),
        "n_keypoints": pose_dim // KEYPOINT_DIMS,
        "pose_channels": KEYPOINT_DIMS,
        "window": int(window),
        "width": int(width),
        "layers": layers,
        "heads": heads,
        "ff_dim": int(ff_dim),
        "audio_layers": audio_layers,
        **REFERENCE_VARIANT,
    }


def extract_state_dict(
    checkpoint: object, use_ema: bool = True, source: str = "checkpoint"
) -> dict[str, Tensor]:
    """The ``GestureDecoder`` state dict inside a trainer checkpoint (EMA by default) or a bare state dict.

    A ``module.`` prefix on every key (DDP) is removed.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{source}: expected a dict, got {type(checkpoint).__name__}")
    if "ema_state_dict" in checkpoint or "model_state_dict" in checkpoint:
        wanted = "ema_state_dict" if use_ema else "model_state_dict"
        if wanted not in checkpoint:
            raise ValueError(
                f"{source}: has no {wanted!r} (keys: {sorted(checkpoint)}); set use_ema accordingly"
            )
        state = checkpoint[wanted]
    else:
        state = checkpoint
    if not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{source}: no state dict of tensors found")
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state)


def load_reference_checkpoint(
    path: str | Path, heads: int = 8, use_ema: bool = True, map_location: str | torch.device = "cpu"
) -> SMGAReferenceTransformer:
    """Build the :class:`SMGAReferenceTransformer` of an original SMGA checkpoint (eval mode).

    Args:
        path: ``audio2pose_best_model.pt`` / ``epoch_N.pth`` of the original trainer, or a bare
            ``GestureDecoder`` state dict saved with ``torch.save``.
        heads: attention heads of the checkpoint (8 in the release; not stored in the weights).
        use_ema: load ``ema_state_dict`` (what the original inference uses) rather than ``model_state_dict``.
        map_location: passed to ``torch.load``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SMGA reference checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: cannot be read as a torch checkpoint of tensors ({err})") from err
    state = extract_state_dict(checkpoint, use_ema=use_ema, source=str(path))
    model = SMGAReferenceTransformer(**reference_config(state, heads=heads, source=str(path)))
    model.load_state_dict(from_reference_state_dict(state, model, source=str(path)))
    return model.eval()
