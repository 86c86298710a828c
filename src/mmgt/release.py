"""Import the released MMGT weights (``MMGT_pretrained``) as a Stage I and a Stage II export.

What ``mmgt-weights import-mmgt SRC OUT`` runs (docs/reproduce-mmgt.md). ``SRC`` is the release folder::

    SRC/stage_1/audio2pose_best_model.pt                        Stage I (the trainer's checkpoint, EMA used)
    SRC/stage_2/process_1/{denoising_unet,reference_unet,pose_guider}-<step>.pth    Stage II image level
    SRC/stage_2/process_2/net-<step>.pth                         Stage II video level (the whole Net)

and writes ``OUT/stage1`` (what ``mmgt-train experiment=smga_toy`` writes into ``<run>/export``: used by
``mmgt-generate pose_model=``) and ``OUT/stage2`` (a Stage II export, process 2 when its file is there, else
process 1 alone: ``mmgt-generate video_model=`` / ``model.init_from=``), both through the project's own
export writers (:meth:`mmgt.stage1.export.Stage1Export.save`, :meth:`mmgt.stage2.export.Stage2Export.save`).

The parts the release does not hold come from local pretrained folders (usual names under a pretrained dir,
:data:`mmgt.stage2.loading.EXPECTED_LAYOUT`): the SD-1.5 UNet (architecture, and the ReferenceNet's unused
output head), sd-vae-ft-mse, the CLIP image encoder, wav2vec2-base-960h (the Stage II audio features), for
process 1 alone optionally AnimateDiff's motion adapter, and WavLM-Large for the Stage I audio features.
Every release key must be consumed (:mod:`mmgt.stage2.release`, :mod:`mmgt.stage1.reference`); values are
cast to float32.

Generation settings written into the Stage II export (``inference=``): ``original`` (default) = the
original inference script (30 DDIM steps on *linear* betas, CFG 3.5, 12-frame windows with overlap 4
wrapping round, branch 0 = 1 + lips at 1 : 1 : 2); ``corrected`` = the training schedule at inference, no
wrap-around, the training branches and weights.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mmgt.factory import to_node
from mmgt.schema import AUDIO_MARGIN

log = logging.getLogger(__name__)

STAGE1_FILE = "stage_1/audio2pose_best_model.pt"
PROCESS1_DIR = "stage_2/process_1"
PROCESS2_DIR = "stage_2/process_2"

RELEASE_LAYOUT = f"""expected release layout (the HF repo addtime/MMGT_pretrained):
  <src>/{STAGE1_FILE}
  <src>/{PROCESS1_DIR}/denoising_unet-<step>.pth, reference_unet-<step>.pth, pose_guider-<step>.pth
  <src>/{PROCESS2_DIR}/net-<step>.pth"""

RELEASE_MASKS: dict[str, Any] = {
    "_target_": "mmgt.stage2.guidance.MotionMaskGuidance",
    "expand_ratio": 1.0,
    "min_size": 0.0,
    "smooth_frames": 1,
    "blur_sigma": 0.078,
    "normalize": True,
    "conf_threshold": 0.3,
}
"""The release's masks as a mask guidance (= ``conf/model/stage2/mask_guidance/mmgt_release.yaml``)."""

TRAINING_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",
    "clip_sample": False,
    "steps_offset": 1,
}
"""The release's training noise schedule; the original inference used it with ``beta_schedule: linear``."""

STAGE1_META: dict[str, Any] = {
    "diffusion": {"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", "cond_drop_prob": 0.25},
    "sample_steps": 50,
    "guidance": 2.0,
    "eta": 1.0,
}
"""The original SMGA sampling: cosine schedule, 50 DDIM steps, CFG 2, eta 1."""


def stage1_audio_spec(wavlm_dir: str | Path, librosa: str = "exact") -> dict[str, Any]:
    """Stage I audio features for the release (1059-d): WavLM-Large's last layer (1024) + 35 features.

    Returned as an extractor node (``mmgt.factory.build(node, mmgt.audio.AUDIO_ENCODER_CLASSES, ...)``).

    ``librosa="exact"``: the original's 35 librosa features (:mod:`mmgt.audio_release`, needs
    ``pip install 'mmgt[audio]'``); ``"standin"``: weight-free features of the same width for machines
    without librosa (onset 1, MFCC 20, 12 log-mel bands where it had chroma_cens, energy and RMS where it had
    the onset-peak and beat one-hots; not the original values, so released weights see other inputs).
    """
    from mmgt import audio  # here: the release's constants import without the media stack (PyAV)

    model_dir = str(Path(wavlm_dir).resolve())
    wavlm = to_node(
        audio.PretrainedSpeechEncoder, model_dir=model_dir, kind="wavlm", layers="last", interpolate="hidden"
    )
    if librosa == "exact":
        return to_node(audio.ConcatExtractor, extractors=[wavlm, to_node(audio.ReleaseLibrosaFeatures)])
    if librosa != "standin":
        raise ValueError(f"stage1 audio features: 'exact' or 'standin', got {librosa!r}")
    parts = [to_node(audio.OnsetExtractor), to_node(audio.MFCCExtractor, n_mfcc=20)]
    parts += [to_node(audio.LogMelExtractor, n_mels=12), to_node(audio.EnergyExtractor)]
    rms = to_node(audio.EnergyExtractor, log=False)
    return to_node(audio.ConcatExtractor, extractors=[wavlm, *parts, rms])


def _load_state(path: Path) -> dict[str, Tensor]:
    """A release ``.pth`` of tensors (``weights_only``); a clear error naming the file otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: cannot be read as a torch file of tensors ({err})") from err
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors")
    return dict(state)


def _one_step_file(folder: Path, stem: str) -> Path | None:
    found = sorted(p for p in folder.glob(f"{stem}-*.pth") if re.fullmatch(rf"{stem}-\d+\.pth", p.name))
    if len(found) > 1:
        raise ValueError(f"{folder}: several {stem}-<step>.pth files ({[p.name for p in found]}); keep one")
    return found[0] if found else None


def find_release_files(src: str | Path) -> dict[str, Any]:
    """The release files in ``src``: ``stage1``, ``process1`` ({stem: path}), ``process2`` (each or None).

    A missing folder, a partial process-1 set or nothing at all raises.
    """
    from mmgt.stage2.release import PROCESS1_FILES

    root = Path(src).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: release folder not found\n{RELEASE_LAYOUT}")
    stage1 = root / STAGE1_FILE
    p1 = {stem: _one_step_file(root / PROCESS1_DIR, stem) for stem in PROCESS1_FILES.values()}
    if any(p1.values()) and not all(p1.values()):
        missing = [f"{stem}-<step>.pth" for stem, p in p1.items() if p is None]
        raise FileNotFoundError(
            f"{root / PROCESS1_DIR}: incomplete process-1 set, missing {missing}\n{RELEASE_LAYOUT}"
        )
    net = _one_step_file(root / PROCESS2_DIR, "net")
    files = {
        "stage1": stage1 if stage1.is_file() else None,
        "process1": p1 if all(p1.values()) else None,
        "process2": net,
    }
    if not any(files.values()):
        raise FileNotFoundError(f"{root}: no MMGT release files found\n{RELEASE_LAYOUT}")
    return files


# --------------------------------------------------------------------------- Stage I
def import_stage1(
    checkpoint: Path, out_dir: Path, heads: int = 8, audio_features: Any = None, wavlm_dir: Path | None = None
) -> Path:
    """``audio2pose_best_model.pt`` (EMA weights) -> a Stage I export in ``out_dir``.

    ``audio_features``: an extractor node (default :func:`stage1_audio_spec`).
    """
    from mmgt import audio
    from mmgt.stage1.export import Stage1Export
    from mmgt.stage1.reference import load_reference_checkpoint

    net = load_reference_checkpoint(checkpoint, heads=heads)
    spec = audio_features if audio_features is not None else stage1_audio_spec(wavlm_dir or "wavlm-large")
    try:
        extractor = audio.extractor_from_node(spec, "--stage1-audio-features")
    except ImportError as e:
        raise ImportError(
            f"{e}; or import with --stage1-audio-features standin (weight-free stand-ins of the 35 features)"
        ) from e
    dims = 1
    for d in extractor.feature_shape():
        dims *= int(d)
    if dims != int(net.config.audio_dim):
        raise ValueError(
            f"{checkpoint}: the network takes {net.config.audio_dim}-d audio, the audio features {spec} "
            f"give {dims}"
        )
    return Stage1Export(audio_features=extractor.node(), **STAGE1_META, source=str(checkpoint)).save(
        net, out_dir
    )


# --------------------------------------------------------------------------- Stage II
def _pose_guider_sizes(state: Mapping[str, Tensor], source: str) -> tuple[int, list[int]]:
    """(out_channels, block_out_channels) of a release PoseGuider state dict."""
    try:
        widths = [int(state["conv_in.weight"].shape[0])]
        n_blocks = len({int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))})
        widths += [int(state[f"blocks.{i}.weight"].shape[0]) for i in range(1, n_blocks, 2)]
        return int(state["conv_out.weight"].shape[0]), widths
    except KeyError as err:
        raise ValueError(f"{source}: not a PoseGuider state dict (no {err.args[0]})") from None


def _audio_proj_sizes(state: Mapping[str, Tensor], source: str) -> dict[str, int]:
    try:
        hidden, in_dim = state["proj1.weight"].shape
        token_dim = int(state["norm.weight"].shape[0])
        tokens = int(state["proj3.weight"].shape[0]) // token_dim
    except KeyError as err:
        raise ValueError(f"{source}: not an AudioProjModel state dict (no {err.args[0]})") from None
    return {"hidden_dim": int(hidden), "in_dim": int(in_dim), "tokens": tokens, "token_dim": token_dim}


def _inference(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inference block, noise scheduler) of the export for ``original`` / ``corrected`` generation."""
    from mmgt.stage2.release import RELEASE_INFERENCE

    if kind == "original":  # overrides of mmgt.stage2.export.DEFAULT_INFERENCE
        inference = {"steps": 30, "closed_loop": True, **RELEASE_INFERENCE}
        return inference, {**TRAINING_SCHEDULE, "beta_schedule": "linear"}
    if kind == "corrected":
        return {}, dict(TRAINING_SCHEDULE)
    raise ValueError(f"inference must be 'original' or 'corrected', got {kind!r}")


def import_stage2(
    files: Mapping[str, Any],
    out_dir: Path,
    folders: Mapping[str, Path],
    process: int,
    *,
    motion_heads: int = 8,
    size: int = 512,
    audio_margin: int = AUDIO_MARGIN,
    audio_proj: Mapping[str, int] | None = None,
    inference: str = "original",
    seed: int = 0,
) -> Path:
    """Release Stage II files -> a Stage II export in ``out_dir`` (see the module docstring).

    Args:
        files: :func:`find_release_files` output.
        out_dir: the export folder written.
        folders: ``unet``, ``vae``, ``image_encoder``, ``speech_encoder`` and optional ``motion_adapter``.
        process: 2 (``net-<step>.pth``) or 1 (the process-1 triplet; fresh audio modules and projection,
            motion modules fresh or from ``folders["motion_adapter"]``).
        motion_heads: attention heads of the motion modules.
        size: the frame side S the export is for.
        audio_margin: audio frames of context on each side of a frame.
        audio_proj: process 1 only: ``hidden_dim``, ``tokens``, ``token_dim`` of the fresh projection.
        inference: ``original`` or ``corrected`` inference defaults.
        seed: seed of the freshly initialised parameters.
    """
    from mmgt import audio
    from mmgt.stage2.components import Stage2Components
    from mmgt.stage2.export import Stage2Export
    from mmgt.stage2.loading import (
        build_audio_proj,
        build_image_encoder,
        build_vae,
        check_pretrained_folder,
        load_unet2d,
    )
    from mmgt.stage2.pose_guider import PoseGuider
    from mmgt.stage2.reference_net import ReferenceNet
    from mmgt.stage2.release import (
        PROCESS1_FILES,
        PROCESS1_NOT_RELEASED,
        REFERENCE_NET_NOT_RELEASED,
        load_release_components,
        release_denoiser,
        split_net,
    )

    if process == 2:
        if files.get("process2") is None:
            raise FileNotFoundError(
                f"process 2 requested but no {PROCESS2_DIR}/net-<step>.pth\n{RELEASE_LAYOUT}"
            )
        net_file = Path(files["process2"])
        release = split_net(_load_state(net_file), str(net_file))
        sources = dict.fromkeys(release, net_file.name)
    elif process == 1:
        if files.get("process1") is None:
            raise FileNotFoundError(f"process 1 requested but no {PROCESS1_DIR} triplet\n{RELEASE_LAYOUT}")
        paths = {name: Path(files["process1"][stem]) for name, stem in PROCESS1_FILES.items()}
        release = {name: _load_state(p) for name, p in paths.items()}
        sources = {name: p.name for name, p in paths.items()}
    else:
        raise ValueError(f"process must be 1 or 2, got {process}")

    w2v = check_pretrained_folder(
        folders["speech_encoder"], "speech_encoder", ("model.safetensors", "pytorch_model.bin")
    )
    w2v_config = json.loads((w2v / "config.json").read_text())
    layers, dim = int(w2v_config["num_hidden_layers"]), int(w2v_config["hidden_size"])
    window = 2 * int(audio_margin) + 1
    if process == 2:
        sizes = _audio_proj_sizes(release["audio_proj"], sources["audio_proj"])
        if sizes["in_dim"] != window * layers * dim:
            raise ValueError(
                f"{sources['audio_proj']}: audioproj takes {sizes['in_dim']} inputs, the speech encoder in "
                f"{w2v} gives {window} x {layers} x {dim} = {window * layers * dim} "
                f"(audio_margin {audio_margin})"
            )
    else:
        sizes = {"hidden_dim": 512, "tokens": 32, "token_dim": 768, **dict(audio_proj or {})}

    torch.manual_seed(seed)  # fresh modules (process 1) are reproducible
    sd_unet = load_unet2d(folders["unet"])
    unet_config = {k: v for k, v in dict(sd_unet.config).items() if not k.startswith("_")}
    max_len = 32
    if process == 2:
        pe = [v for k, v in release["denoiser"].items() if k.endswith("pos_encoder.pe")]
        max_len = int(pe[0].shape[1]) if pe else max_len
    adapter = folders.get("motion_adapter") if process == 1 else None
    out_ch, widths = _pose_guider_sizes(release["pose_guider"], sources["pose_guider"])
    models = {
        "reference_net": ReferenceNet(**unet_config),
        "denoiser": release_denoiser(
            unet_config,
            audio_dim=int(sizes["token_dim"]),
            motion_adapter=str(adapter) if adapter else None,
            motion_heads=motion_heads,
            motion_max_seq_length=max_len,
        ),
        "pose_guider": PoseGuider(out_channels=out_ch, block_out_channels=widths),
        "audio_proj": build_audio_proj(
            audio_layers=layers,
            audio_dim=dim,
            window=window,
            hidden_dim=int(sizes["hidden_dim"]),
            tokens=int(sizes["tokens"]),
            token_dim=int(sizes["token_dim"]),
        ),
    }
    sd_state = sd_unet.state_dict()
    not_released = {"reference_net": REFERENCE_NET_NOT_RELEASED}
    if process == 1:
        not_released["denoiser"] = PROCESS1_NOT_RELEASED
    loaded = {k: v for k, v in models.items() if k in release}
    load_release_components(loaded, release, sources, not_released, {"reference_net": sd_state})
    components = Stage2Components(
        vae=build_vae(folders["vae"]),
        image_encoder=build_image_encoder(folders["image_encoder"]),
        **models,
    )
    inference_block, schedule = _inference(inference)
    export = Stage2Export(
        size=int(size),
        frames=12,
        audio_features=to_node(
            audio.PretrainedSpeechEncoder, model_dir=str(w2v.resolve()), kind="wav2vec2", layers="all"
        ),
        audio_margin=int(audio_margin),
        pose_render={"limb_dim": 0.9},
        process="video" if process == 2 else "image",
        use_audio=process == 2,
        mask_guidance=dict(RELEASE_MASKS),
        noise_scheduler=schedule,
        inference=inference_block,
        source={k: str(v) for k, v in sources.items()},
    )
    return export.save(components, out_dir)


def import_release(
    src: str | Path,
    out: str | Path,
    pretrained_dir: str | Path = "pretrained_weights",
    folders: Mapping[str, str | Path | None] | None = None,
    process: str | int = "auto",
    stage1: bool = True,
    stage2: bool = True,
    stage1_heads: int = 8,
    stage1_audio_features: Any = None,
    **stage2_options: Any,
) -> dict[str, Path]:
    """The whole import (``mmgt-weights import-mmgt``): returns ``{"stage1": path, "stage2": path}``.

    Args:
        src: the release folder (see :func:`find_release_files`).
        out: the output folder of the exports.
        pretrained_dir: the folder holding the pretrained weights.
        folders: overrides of the pretrained folders (``unet``, ``vae``, ``image_encoder``,
            ``speech_encoder``, ``motion_adapter``, ``wavlm``); default: the usual names under
            ``pretrained_dir`` (``motion_adapter`` only if that folder exists).
        process: ``auto`` (2 when ``net-<step>.pth`` is there, else 1), 1 or 2.
        stage1: import the Stage I checkpoint.
        stage2: import the Stage II files.
        stage1_heads: attention heads of the Stage I model.
        stage1_audio_features: Stage I audio extractor node (default :func:`stage1_audio_spec`).
        stage2_options: :func:`import_stage2` keyword arguments.
    """
    from mmgt.stage2.loading import EXPECTED_LAYOUT

    files = find_release_files(src)
    root = Path(pretrained_dir).expanduser()
    chosen = {k: root / v[0] for k, v in EXPECTED_LAYOUT.items() if k != "controlnet"}
    chosen["wavlm"] = root / "wavlm-large"
    if not chosen["motion_adapter"].is_dir():
        chosen.pop("motion_adapter")
    chosen.update({k: Path(v).expanduser() for k, v in (folders or {}).items() if v})
    out_root = Path(out)
    written: dict[str, Path] = {}
    if stage1:
        if files["stage1"] is None:
            raise FileNotFoundError(
                f"{Path(src) / STAGE1_FILE}: Stage I checkpoint not found\n{RELEASE_LAYOUT}"
            )
        written["stage1"] = import_stage1(
            files["stage1"], out_root / "stage1", stage1_heads, stage1_audio_features, chosen["wavlm"]
        )
        log.info("Stage I export: %s", written["stage1"])
    if stage2:
        proc = (2 if files["process2"] else 1) if process == "auto" else int(process)
        written["stage2"] = import_stage2(files, out_root / "stage2", chosen, proc, **stage2_options)
        log.info("Stage II export (process %d): %s", proc, written["stage2"])
    return written


__all__ = [
    "RELEASE_LAYOUT",
    "RELEASE_MASKS",
    "find_release_files",
    "import_release",
    "import_stage1",
    "import_stage2",
]
