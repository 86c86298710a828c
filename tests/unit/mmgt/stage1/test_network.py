"""SMGATransformer: shapes, export round trip, gradients, audio dropout, configs, reference checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import ClassVar

import hydra
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mmgt import schema as S
from mmgt.config import CONFIG_DIR
from mmgt.stage1 import SMGAReferenceTransformer, SMGATransformer, load_reference_checkpoint
from mmgt.stage1.network import network_class
from mmgt.stage1.positions import apply_rotary, rotary_angles
from mmgt.stage1.reference import REFERENCE_VARIANT, from_reference_state_dict, to_reference_state_dict
from tests.helpers.model_tester import ModelTesterMixin
from tests.helpers.poses import make_pose

AUDIO_DIM = 8
TINY = dict(audio_dim=AUDIO_DIM, width=32, layers=2, heads=4, ff_dim=64, audio_layers=1)
REF_TINY = dict(TINY, **REFERENCE_VARIANT)


def _inputs(
    batch: int = 2, frames: int = 80, layout: str = "model", seed: int = 0
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pose = torch.from_numpy(S.to_model_space(make_pose(frames + 1, seed=seed)))
    pose = pose[None].expand(batch, -1, -1, -1)
    if layout == "reference402":
        pose = torch.from_numpy(S.to_reference_402(make_pose(frames + 1, seed=seed)))[None].expand(
            batch, -1, -1
        )
    return {
        "sample": pose[:, 1:] + 0.3 * torch.randn(pose[:, 1:].shape, generator=g),
        "timestep": torch.randint(0, 1000, (batch,), generator=g),
        "audio": torch.randn(batch, frames, AUDIO_DIM, generator=g),
        "cond_pose": pose[:, 0].clone(),
    }


class _SMGATester(ModelTesterMixin):
    """The generic network tests (tests.helpers.model_tester) for one SMGA variant, 20-frame windows."""

    network: ClassVar[type[SMGATransformer]] = SMGATransformer
    variant: ClassVar[dict] = {}
    layout: ClassVar[str] = "model"

    def make_model(self) -> SMGATransformer:
        torch.manual_seed(0)
        return self.network(**{**TINY, **self.variant})

    def make_inputs(self) -> dict:
        return {**_inputs(frames=20, layout=self.layout), "drop_audio": torch.tensor([True, False])}

    def expected_shape(self, inputs: dict) -> tuple[int, ...]:
        return tuple(inputs["sample"].shape)


class TestSMGATransformer(_SMGATester):
    variant = {"face_indices": list(S.LIPS)}


class TestSMGAReferenceStacking(_SMGATester):
    variant = {"stacking": "reference"}


class TestSMGAAbsolutePositions(_SMGATester):
    variant = {"positional": "absolute"}


class TestSMGAWithoutPositions(_SMGATester):
    variant = {"positional": "none"}


class TestSMGAReferenceTransformer(_SMGATester):
    network, variant, layout = SMGAReferenceTransformer, REFERENCE_VARIANT, "reference402"


@pytest.mark.parametrize(
    ("legacy", "network", "variant", "layout"),
    [
        (
            {"rotary": False, "rotary_mode": "heads", "input_layout": "model"},
            SMGATransformer,
            {"positional": "absolute"},
            "model",
        ),
        (
            {"rotary": True, "rotary_mode": "inputs", "input_layout": "reference402"},
            SMGAReferenceTransformer,
            REFERENCE_VARIANT,
            "reference402",
        ),
    ],
    ids=["absolute", "reference402"],
)
def test_exports_written_before_positional_load_as_they_were(
    tmp_path: Path, legacy: dict, network: type, variant: dict, layout: str
) -> None:
    """A config.json with the old flags (rotary, rotary_mode, input_layout) loads into the same network."""
    net = network(**{**TINY, **variant}).eval()
    net.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config = (
        {k: v for k, v in config.items() if k != "positional"} | legacy | {"_class_name": "SMGATransformer"}
    )
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = network_class(config).from_pretrained(tmp_path)
    assert type(loaded) is network and loaded.config.positional == net.config.positional
    inputs = _inputs(frames=12, layout=layout)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs), net(**inputs), rtol=0, atol=0)


@pytest.mark.parametrize("frames", [80, 1])
def test_any_window_length_up_to_window(frames: int) -> None:
    out = SMGATransformer(**TINY)(**_inputs(frames=frames))
    assert out.shape == (2, frames, 134, 3) and torch.isfinite(out).all()


def test_reference402_layout_forward() -> None:
    net = SMGAReferenceTransformer(**REF_TINY)
    inputs = _inputs(frames=23, layout="reference402")
    assert inputs["sample"].shape == (2, 23, 402)
    out = net(**inputs, drop_audio=torch.tensor([True, False]))
    assert out.shape == (2, 23, 402) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="sample must be"):
        net(**_inputs(frames=23))  # model-space input to a reference402 network


def test_bad_inputs_raise_clear_errors() -> None:
    net = SMGATransformer(**TINY, window=40)
    with pytest.raises(ValueError, match="window of 41 frames"):
        net(**_inputs(frames=41))
    bad = _inputs(frames=10)
    bad["audio"] = bad["audio"][:, :9]
    with pytest.raises(ValueError, match="audio must be"):
        net(**bad)
    with pytest.raises(ValueError, match="stacking"):
        SMGATransformer(**TINY, stacking="face_only")
    with pytest.raises(ValueError, match="positional='rotary', expected one of"):
        SMGATransformer(**TINY, positional="rotary")


def test_dropped_audio_makes_output_independent_of_audio() -> None:
    net = SMGATransformer(**TINY).eval()
    inputs = _inputs(frames=25)
    other = dict(inputs, audio=torch.randn_like(inputs["audio"]) * 3)
    drop = torch.tensor([True, False])
    with torch.no_grad():
        a, b = net(**inputs, drop_audio=drop), net(**other, drop_audio=drop)
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)  # dropped: audio has no effect
    assert (a[1] - b[1]).abs().max() > 1e-3  # kept: audio changes the output
    with torch.no_grad():
        c, d = net(**inputs), net(**other)
    assert (c - d).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_rotary_encodes_relative_positions() -> None:
    dim = 16
    q, k = torch.randn(dim), torch.randn(dim)
    pos = torch.arange(12)
    rq = apply_rotary(q.expand(12, dim), rotary_angles(pos, dim))
    rk = apply_rotary(k.expand(12, dim), rotary_angles(pos, dim))
    scores = rq @ rk.T  # (12, 12): depends on i - j only
    for offset in (-3, 0, 5):
        diag = torch.diagonal(scores, offset)
        torch.testing.assert_close(diag, diag[0].expand_as(diag), rtol=1e-4, atol=1e-4)
    # pairs (0, 1) rotate as complex numbers by position * theta^(-2i/dim); norms are kept
    angle = rotary_angles(torch.tensor([3]), dim)[0, 0]
    expected = torch.complex(q[0], q[1]) * torch.exp(1j * angle)
    torch.testing.assert_close(rq[3, :2], torch.stack([expected.real, expected.imag]).float())
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(12))


# ----------------------------------------------------------------------------------------- configs
def _net_config(name: str, audio_dim: int | None = None):  # noqa: ANN202
    cfg = OmegaConf.load(CONFIG_DIR / "model" / "stage1" / f"{name}.yaml")
    if audio_dim is not None:
        cfg.net.audio_dim = audio_dim
    return cfg.net


def test_scale_configs_instantiate() -> None:
    tiny = hydra.utils.instantiate(_net_config("tiny", audio_dim=AUDIO_DIM))
    assert isinstance(tiny, SMGATransformer) and tiny.config.width == 64
    assert tiny(**_inputs(batch=1, frames=80)).shape == (1, 80, 134, 3)
    base = _net_config("base", audio_dim=AUDIO_DIM)
    assert (base.width, base.layers, base.heads, base.ff_dim) == (512, 8, 8, 1024)
    with pytest.raises(Exception, match="audio_dim"):
        hydra.utils.instantiate(_net_config("tiny"))  # the LitModule passes the DataModule's feature size
    print(f"\ntiny SMGATransformer (audio_dim={AUDIO_DIM}): {tiny.num_parameters():,} parameters")


def test_reference_config_at_base_scale_runs_on_cpu() -> None:
    cfg = _net_config("smga_reference")
    assert {k: cfg[k] for k in REFERENCE_VARIANT} == REFERENCE_VARIANT
    torch.manual_seed(0)
    net = hydra.utils.instantiate(cfg).eval()
    n_params = net.num_parameters()
    print(f"\nsmga_reference SMGATransformer (base, audio 1059, 402-d): {n_params:,} parameters")
    assert (net.config.audio_dim, net.config.width, net.config.layers) == (1059, 512, 8)
    # the original's GestureDecoder has these plus 8 x 2,103,296 unused (self_attn, norm_*_3, film_*_3)
    assert n_params == 73_207_698
    pose = torch.from_numpy(S.to_reference_402(make_pose(81)))
    with torch.no_grad():
        out = net(pose[None, 1:], torch.tensor([999]), torch.randn(1, 80, 1059), pose[None, 0])
    assert out.shape == (1, 80, 402) and torch.isfinite(out).all()


# ------------------------------------------------------------------------- reference checkpoints
def _gesture_decoder_unused_keys(layers: int, audio_layers: int, width: int) -> dict[str, torch.Tensor]:
    """Keys the original GestureDecoder has but never uses, with values of the right shape."""
    unused: dict[str, torch.Tensor] = {}
    for i in range(layers):
        p = f"seqTransDecoder.stack.{i}."
        unused[p + "self_attn.in_proj_weight"] = torch.randn(3 * width, width)
        unused[p + "self_attn.in_proj_bias"] = torch.randn(3 * width)
        unused[p + "self_attn.out_proj.weight"] = torch.randn(width, width)
        unused[p + "self_attn.out_proj.bias"] = torch.randn(width)
        for s in ("face", "body"):
            unused[p + f"norm_{s}_3.weight"] = torch.randn(width)
            unused[p + f"norm_{s}_3.bias"] = torch.randn(width)
            unused[p + f"film_{s}_3.block.1.weight"] = torch.randn(2 * width, width)
            unused[p + f"film_{s}_3.block.1.bias"] = torch.randn(2 * width)
    freqs = 1.0 / (10000 ** (torch.arange(0, width, 2).float() / width))  # rotary-embedding-torch buffer
    owners = [f"cond_encoder.{i}." for i in range(audio_layers)] + [
        f"seqTransDecoder.stack.{i}." for i in range(layers)
    ]
    for owner in ["", *owners]:
        unused[owner + "rotary.freqs"] = freqs.clone()
    return unused


def _gesture_decoder_keys(layers: int, audio_layers: int) -> set[str]:
    """Every parameter/buffer key of the original GestureDecoder, enumerated from its module structure."""
    mha = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    wb = ("weight", "bias")
    keys = {"null_cond_embed", "null_cond_hidden", "rotary.freqs"}
    for module in ("input_projection", "cond_projection", "time_mlp.1", "to_time_cond.0", "to_time_tokens.0",
                   "norm_cond", "non_attn_cond_projection.0", "non_attn_cond_projection.1",
                   "non_attn_cond_projection.3", "final_layer"):  # fmt: skip
        keys |= {f"{module}.{k}" for k in wb}
    for i in range(audio_layers):
        p = f"cond_encoder.{i}."
        keys |= {p + "self_attn." + k for k in mha} | {p + "rotary.freqs"}
        keys |= {f"{p}{m}.{k}" for m in ("linear1", "linear2", "norm1", "norm2") for k in wb}
    for i in range(layers):
        p = f"seqTransDecoder.stack.{i}."
        for attn in ("face_self_attn", "face_cross_attn", "body_self_attn", "body_cross_attn", "self_attn"):
            keys |= {p + attn + "." + k for k in mha}
        modules = ["linear1", "linear2", "norm_final", "film_final.block.1"]
        modules += [f"norm_{s}_{j}" for s in ("face", "body") for j in (1, 2, 3)]
        modules += [f"film_{s}_{j}.block.1" for s in ("face", "body") for j in (1, 2, 3)]
        keys |= {f"{p}{m}.{k}" for m in modules for k in wb} | {p + "rotary.freqs"}
    return keys


def _reference_layout(net: SMGATransformer) -> dict[str, torch.Tensor]:
    """``net``'s weights written as the original trainer's GestureDecoder state dict."""
    state = to_reference_state_dict(net.state_dict())
    state.update(_gesture_decoder_unused_keys(net.config.layers, net.config.audio_layers, net.config.width))
    return state


def test_reference_layout_has_exactly_the_original_keys() -> None:
    net = SMGAReferenceTransformer(**dict(REF_TINY, layers=3, audio_layers=2))
    state = _reference_layout(net)
    assert set(state) == _gesture_decoder_keys(layers=3, audio_layers=2)
    assert state["seqTransDecoder.stack.1.body_cross_attn.in_proj_weight"].shape == (96, 32)
    # inverse mapping restores every tensor exactly
    restored = from_reference_state_dict(state, net)
    for key, value in net.state_dict().items():
        torch.testing.assert_close(restored[key], value, rtol=0, atol=0)


def test_audio_standardisation_is_saved_and_folds_into_the_reference_layout(tmp_path: Path) -> None:
    torch.manual_seed(3)
    net = SMGAReferenceTransformer(**REF_TINY).eval()
    inputs = _inputs(batch=2, frames=17, layout="reference402")
    before = net(**inputs)
    mean, std = torch.randn(net.config.audio_dim), torch.rand(net.config.audio_dim) + 0.5
    net.set_audio_stats(mean, std)
    after = net(**inputs)
    assert not torch.allclose(before, after)
    net.save_pretrained(tmp_path)  # the statistics travel with the weights
    reloaded = SMGAReferenceTransformer.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(**inputs), after)
    # written in the original layout, the statistics are folded into cond_projection: same function
    folded = SMGAReferenceTransformer(**REF_TINY).eval()
    folded.load_state_dict(from_reference_state_dict(_reference_layout(net), folded))
    torch.testing.assert_close(folded(**inputs), after, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="set_audio_stats"):
        net.set_audio_stats(mean[:3], std)


def _original_forward(sd: dict, x: torch.Tensor, t: torch.Tensor, audio: torch.Tensor, cond: torch.Tensor,
                      heads: int, drop: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """The original GestureDecoder's computation written out from the spec (mmgt-reference.md b.1).

    Independent of mmgt.stage1.network: packed-weight ``F.multi_head_attention_forward``, the
    rotary-embedding-torch convention (full width, interleaved ``rotate_half``) applied to attention
    inputs, EDGE's sinusoidal embedding, and the body stream fed its first projection in every layer.
    """
    width = sd["input_projection.weight"].shape[0]

    def lin(h, name):  # noqa: ANN001, ANN202
        return F.linear(h, sd[name + ".weight"], sd[name + ".bias"])

    def norm(h, name):  # noqa: ANN001, ANN202
        return F.layer_norm(h, (width,), sd[name + ".weight"], sd[name + ".bias"])

    def rot(h):  # noqa: ANN001, ANN202
        inv = 1.0 / (10000 ** (torch.arange(0, width, 2).float() / width))
        ang = (torch.arange(h.shape[1]).float()[:, None] * inv).repeat_interleave(2, dim=-1)
        pairs = h.unflatten(-1, (-1, 2))
        half = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return h * ang.cos() + half * ang.sin()

    def mha(q, k, v, name):  # noqa: ANN001, ANN202
        out, _ = F.multi_head_attention_forward(
            q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), width, heads,
            sd[name + ".in_proj_weight"], sd[name + ".in_proj_bias"], None, None, False, 0.0,
            sd[name + ".out_proj.weight"], sd[name + ".out_proj.bias"], training=False, need_weights=False,
        )  # fmt: skip
        return out.transpose(0, 1)

    def film(h, c, name):  # noqa: ANN001, ANN202
        scale, shift = lin(F.mish(c), name + ".block.1")[:, None].chunk(2, dim=-1)
        return (scale + 1) * h + shift

    def ff(h, prefix):  # noqa: ANN001, ANN202
        return lin(F.gelu(lin(h, prefix + "linear1")), prefix + "linear2")

    batch, frames = x.shape[:2]
    face_mask = torch.zeros(402)
    face_mask[72:276] = 1.0
    cond_rep = cond[:, None].expand(batch, frames, 402)
    x_face = lin(torch.cat([x * face_mask, cond_rep * face_mask], -1), "input_projection")
    x_body = lin(torch.cat([x * (1 - face_mask), cond_rep * (1 - face_mask)], -1), "input_projection")
    tokens = lin(audio, "cond_projection")
    for i in range(2):
        p = f"cond_encoder.{i}."
        h = norm(tokens, p + "norm1")
        tokens = tokens + mha(rot(h), rot(h), h, p + "self_attn")
        tokens = tokens + ff(norm(tokens, p + "norm2"), p)
    tokens = torch.where(drop[:, None, None], sd["null_cond_embed"][:, :frames], tokens)
    pooled = tokens.mean(1)
    hidden = lin(F.silu(lin(norm(pooled, "non_attn_cond_projection.0"), "non_attn_cond_projection.1")),
                 "non_attn_cond_projection.3")  # fmt: skip
    hidden = torch.where(drop[:, None], sd["null_cond_hidden"], hidden)
    half = width // 2
    freqs = torch.exp(torch.arange(half) * -(math.log(10000) / (half - 1)))
    emb = t.float()[:, None] * freqs[None]
    t_hidden = F.mish(lin(torch.cat([emb.sin(), emb.cos()], -1), "time_mlp.1"))
    cond_vec = lin(t_hidden, "to_time_cond.0") + hidden
    t_tokens = lin(t_hidden, "to_time_tokens.0").unflatten(-1, (2, width))
    memory = norm(torch.cat([tokens, t_tokens], 1), "norm_cond")
    face = x_face
    for i in range(sum(k.endswith("norm_final.weight") for k in sd)):
        p = f"seqTransDecoder.stack.{i}."
        outs = []
        for s, h in (("face", face), ("body", x_body)):
            n1 = norm(h, f"{p}norm_{s}_1")
            h = h + film(mha(rot(n1), rot(n1), n1, f"{p}{s}_self_attn"), cond_vec, f"{p}film_{s}_1")
            n2 = norm(h, f"{p}norm_{s}_2")
            h = h + film(mha(rot(n2), rot(memory), memory, f"{p}{s}_cross_attn"), cond_vec, f"{p}film_{s}_2")
            outs.append(h)
        merged = outs[0] + outs[1]
        face = merged + film(ff(norm(merged, p + "norm_final"), p), cond_vec, p + "film_final")
    return lin(face, "final_layer")


def test_loaded_reference_checkpoint_computes_the_original_forward(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = SMGAReferenceTransformer(**dict(REF_TINY, audio_layers=2))
    state = _reference_layout(net)
    path = tmp_path / "audio2pose_best_model.pt"
    torch.save(state, path)  # bare state dict
    loaded = load_reference_checkpoint(path, heads=4)
    assert not loaded.training
    inputs = _inputs(frames=80, layout="reference402", seed=3)
    drop = torch.tensor([False, True])
    with torch.no_grad():
        ours = loaded(**inputs, drop_audio=drop)
        original = _original_forward(
            state,
            inputs["sample"],
            inputs["timestep"],
            inputs["audio"],
            inputs["cond_pose"],
            heads=4,
            drop=drop,
        )
    torch.testing.assert_close(ours, original, rtol=1e-4, atol=1e-5)


def test_load_trainer_checkpoint_picks_ema_and_handles_ddp_prefix(tmp_path: Path) -> None:
    torch.manual_seed(2)
    ema, raw = SMGAReferenceTransformer(**REF_TINY).eval(), SMGAReferenceTransformer(**REF_TINY).eval()
    ckpt = {
        "ema_state_dict": _reference_layout(ema),
        "model_state_dict": {f"module.{k}": v for k, v in _reference_layout(raw).items()},
        "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]},
        "epoch": 3400,
    }
    path = tmp_path / "epoch_3400.pth"
    torch.save(ckpt, path)
    inputs = _inputs(frames=40, layout="reference402")
    with torch.no_grad():
        torch.testing.assert_close(load_reference_checkpoint(path, heads=4)(**inputs), ema(**inputs))
        torch.testing.assert_close(
            load_reference_checkpoint(path, heads=4, use_ema=False)(**inputs), raw(**inputs)
        )
    assert load_reference_checkpoint(path, heads=4).config.layers == 2


def test_load_reference_checkpoint_rejects_mismatches(tmp_path: Path) -> None:
    net = SMGAReferenceTransformer(**REF_TINY)
    good = _reference_layout(net)
    cases = {
        "missing": {k: v for k, v in good.items() if k != "final_layer.bias"},
        "unexpected": {**good, "seqTransDecoder.stack.0.gate.weight": torch.zeros(3)},
        "rotary": {**good, "rotary.freqs": good["rotary.freqs"] * 2},
        "shape": {**good, "norm_cond.weight": torch.zeros(7)},
    }
    messages = {
        "missing": "missing final_layer.bias",
        "unexpected": "unexpected seqTransDecoder.stack.0.gate",
        "rotary": "rotary frequencies",
        "shape": "norm_cond.weight: shape",
    }
    for name, state in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save({"ema_state_dict": state}, path)
        with pytest.raises(ValueError, match=messages[name]) as err:
            load_reference_checkpoint(path, heads=4)
        assert str(path) in str(err.value)
    torch.save({"model_state_dict": good}, tmp_path / "no_ema.pt")
    with pytest.raises(ValueError, match="has no 'ema_state_dict'"):
        load_reference_checkpoint(tmp_path / "no_ema.pt", heads=4)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_reference_checkpoint(tmp_path / "absent.pt")


def test_pose_standardisation_is_saved_and_refused_by_the_reference_layout(tmp_path: Path) -> None:
    net = SMGATransformer(**TINY).eval()
    mean, std = torch.randn(134, 3) * 0.1, torch.rand(134, 3) * 0.2
    net.set_pose_stats(mean, std)
    assert abs(float(net.pose_std.min()) - 0.01) < 1e-6  # floored
    pose = torch.randn(2, 5, 134, 3)
    torch.testing.assert_close(net.denormalize_pose(net.normalize_pose(pose)), pose, rtol=1e-5, atol=1e-5)
    net.save_pretrained(tmp_path)
    torch.testing.assert_close(SMGATransformer.from_pretrained(tmp_path).pose_std, net.pose_std)
    with pytest.raises(ValueError, match="standardises poses"):
        to_reference_state_dict(net.state_dict())
