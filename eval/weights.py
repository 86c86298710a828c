"""Weights registry: every feature network the metrics load, where to get it, under what licence.

Nothing here redistributes weights. Files live in one folder, ``$MMGT_WEIGHTS`` or ``~/.cache/mmgt/weights``
(torchvision/pytorch-fid files are also found in the torch hub cache, ``$TORCH_HOME/hub/checkpoints``).

* :func:`resolve` returns the local path of a weight file, after checking it; a missing file raises
  :class:`MissingWeightsError` saying what to get, from which URL, under what licence and where to put it.
* :func:`verify` checks a local file: against the pinned sha256 when one is known, otherwise against the
  torch-hub style hash prefix in the file name (``name-<sha256 prefix>.pth``), otherwise it reports the file
  as unverified with its sha256.
* :func:`fetch` downloads with urllib into a temporary file in the weights folder, checks it and renames it
  into place atomically.

Hashes are pinned only where they are known: no sha256 here was invented. The metric adapters never see
this registry: the runner resolves a registry name to a path and passes ``weights_path=``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from mmgt.digest import sha256_file

__all__ = [
    "REGISTRY",
    "MissingWeightsError",
    "Verification",
    "WeightSpec",
    "WeightsChecksumError",
    "WeightsError",
    "candidate_paths",
    "fetch",
    "get_command",
    "get_spec",
    "resolve",
    "verify",
    "weights_dir",
]

ENV_VAR = "MMGT_WEIGHTS"
DEFAULT_DIR = Path("~/.cache/mmgt/weights")
"""Also the default of ``paths.weights_dir`` (conf/paths/default.yaml), which mmgt-eval and training read."""
_CHUNK = 1 << 20
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,64})\.[A-Za-z0-9]+$")
"""torch.hub convention: ``<name>-<first hex digits of the sha256>.<ext>``."""


class WeightsError(RuntimeError):
    """A weight file cannot be used (missing, wrong checksum, failed download)."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """A weight file is not on disk; the message says what to get and where to put it.

    ``spec`` and ``searched`` (the paths looked at) are set by :func:`resolve`.
    """

    def __init__(self, message: str, spec: WeightSpec | None = None, searched: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.spec, self.searched = spec, list(searched)


class WeightsChecksumError(WeightsError):
    """A weight file's sha256 differs from the pinned sha256 or from its file name's hash prefix."""


@dataclass(frozen=True)
class WeightSpec:
    """One registered weight file."""

    name: str
    """Registry name used in configs (``weights: inception_fid``)."""
    filename: str
    """File name inside the weights folder (the upstream file name)."""
    sha256: str | None
    """Full sha256 of the upstream file, or None when not known (never guessed)."""
    url: str | None
    """Upstream download URL (None: no upstream file, e.g. a checkpoint the project trains)."""
    licence: str
    description: str
    used_by: tuple[str, ...]
    """Metric names (conf/eval/metrics/<name>.yaml) that load it."""
    sha256_prefix: str | None = None
    """Leading hex digits of the sha256, from a torch-hub style file name, when the full hash is unknown."""
    note: str = ""
    """How to obtain the file when ``fetch`` cannot (login pages, project-trained checkpoints, ...)."""
    torch_hub: bool = False
    """Also look for the file in the torch hub checkpoint cache (where torchvision / pytorch-fid put it)."""
    command: str | None = None
    """The ``mmgt-weights`` command that makes the file when it has no URL (see :func:`get_command`)."""


def _prefix_from_name(filename: str) -> str | None:
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m else None


_SPECS: tuple[WeightSpec, ...] = (
    WeightSpec(
        name="inception_fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        sha256=None,
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        licence="Apache-2.0 (pytorch-fid port of TensorFlow's inception-2015-12-05); download at run time",
        description="pytorch-fid FID InceptionV3 (pool3, 2048-d), torch state_dict",
        used_by=("fid",),
        sha256_prefix=_prefix_from_name("pt_inception-2015-12-05-6726825d.pth"),
        note="Same tensors as torch-fidelity's weights-inception-2015-12-05-6726825d.pth (release v0.2.0).",
        torch_hub=True,
    ),
    WeightSpec(
        name="i3d_styleganv",
        filename="i3d_torchscript.pt",
        sha256=None,
        url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
        licence="port of DeepMind i3d-kinetics-400 (Apache-2.0); StyleGAN-V states no licence: "
        "download at run time, do not redistribute",
        description="StyleGAN-V FVD I3D (Kinetics-400 logits, 400-d), TorchScript",
        used_by=("fvd",),
    ),
    WeightSpec(
        name="i3d_videogpt",
        filename="i3d_pretrained_400.pt",
        sha256=None,
        url="https://drive.google.com/uc?export=download&id=1mQK8KD8G6UWRa5t87SRMm5PVXtlpneJT",
        licence="unclear (VideoGPT port of the Kinetics-400 I3D): download at run time, do not redistribute",
        description="VideoGPT / DisCo FVD I3D (InceptionI3d(400)), torch state_dict",
        used_by=("fvd",),
        note="Google Drive id from VideoGPT's videogpt/download.py; Drive may answer with a confirmation "
        "page instead of the file: then download it in a browser (or with gdown) and place it by hand.",
    ),
    WeightSpec(
        name="syncnet_v2",
        filename="syncnet_v2.model",
        sha256=None,
        url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
        licence="no licence stated for the weights (syncnet_python code is MIT): do not redistribute",
        description="SyncNet (joonson/syncnet_python), torch-pickled name->tensor dict",
        used_by=("sync",),
        note="A third-party README (nawta/SyncNet_py309_313) reports sha256 961e8696…5442 (abridged); "
        "not pinned here.",
    ),
    WeightSpec(
        name="s3fd",
        filename="sfd_face.pth",
        sha256=None,
        url="http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/sfd_face.pth",
        licence="no licence stated: do not redistribute",
        description="S3FD face detector used by syncnet_python's pipeline, torch state_dict (optional: "
        "the Sync metric uses mediapipe face detection unless given these weights)",
        used_by=("sync",),
        note="A third-party README (nawta/SyncNet_py309_313) reports sha256 d54a87c2…c491 (abridged); "
        "not pinned here.",
    ),
    WeightSpec(
        name="lpips_alexnet",
        filename="alexnet-owt-7be5be79.pth",
        sha256=None,
        url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        licence="torchvision model zoo (code BSD-3; ImageNet-trained weights)",
        description="torchvision AlexNet backbone of LPIPS(net='alex'); the LPIPS linear heads ship in the "
        "lpips wheel (BSD-2)",
        used_by=("lpips",),
        sha256_prefix=_prefix_from_name("alexnet-owt-7be5be79.pth"),
        torch_hub=True,
    ),
    WeightSpec(
        name="lpips_vgg16",
        filename="vgg16-397923af.pth",
        sha256=None,
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        licence="torchvision model zoo (code BSD-3; ImageNet-trained weights)",
        description="torchvision VGG16 backbone of LPIPS(net='vgg'); the LPIPS linear heads ship in the "
        "lpips wheel (BSD-2)",
        used_by=("lpips",),
        sha256_prefix=_prefix_from_name("vgg16-397923af.pth"),
        torch_hub=True,
    ),
    WeightSpec(
        name="fgd_autoencoder",
        filename="fgd_autoencoder.pt",
        sha256=None,
        url=None,
        licence="produced by the project (your own training run)",
        description="pose autoencoder whose latent space FGD is measured in, trained on dataset keypoints",
        used_by=("fgd",),
        command="mmgt-weights train-fgd <clip store>",
        note="No upstream file: train it on your dataset's keypoints with the project's FGD autoencoder "
        "training, then copy the checkpoint here or pass its path. FGD values are only comparable between "
        "runs that use the same checkpoint (its sha256 is written into every result).",
    ),
)

REGISTRY: Mapping[str, WeightSpec] = MappingProxyType({s.name: s for s in _SPECS})
"""All registered weights by name (read-only)."""


def get_spec(name: str | WeightSpec) -> WeightSpec:
    """The registered spec of ``name`` (a :class:`WeightSpec` is returned as is)."""
    if isinstance(name, WeightSpec):
        return name
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown weights {name!r}; registered: {', '.join(REGISTRY)}") from None


def weights_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """The weights folder: ``directory`` if given, else ``$MMGT_WEIGHTS``, else ``~/.cache/mmgt/weights``."""
    if directory is not None:
        return Path(directory).expanduser()
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else DEFAULT_DIR.expanduser()


def _torch_hub_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def candidate_paths(spec: str | WeightSpec, directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where :func:`resolve` looks for the file, in order."""
    spec = get_spec(spec)
    paths = [weights_dir(directory) / spec.filename]
    if spec.torch_hub:
        paths.append(_torch_hub_dir() / spec.filename)
    return paths


@dataclass
class Verification:
    """Result of checking one local weight file."""

    name: str
    path: Path | None
    status: str
    """``ok`` (pinned sha256 matches), ``prefix-ok`` (no pinned sha256; the name's hash prefix matches),
    ``unverified`` (nothing to check against), ``mismatch`` or ``missing``."""
    sha256: str | None
    message: str

    @property
    def ok(self) -> bool:
        """True unless the file is missing or its checksum is wrong."""
        return self.status in ("ok", "prefix-ok", "unverified")

    def as_dict(self) -> dict:
        """The verification as a JSON-ready dict."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "status": self.status,
            "sha256": self.sha256,
            "message": self.message,
        }


def _check_digest(spec: WeightSpec, digest: str) -> tuple[str, str]:
    """(status, message) of a computed sha256 against the spec."""
    if spec.sha256:
        if digest == spec.sha256.lower():
            return "ok", "sha256 ok"
        return "mismatch", f"sha256 mismatch: expected {spec.sha256}, got {digest}"
    if spec.sha256_prefix:
        prefix = spec.sha256_prefix.lower()
        if digest.startswith(prefix):
            return "prefix-ok", f"no pinned sha256; prefix ok ({prefix})"
        return "mismatch", f"no pinned sha256; prefix mismatch: expected {prefix}…, got {digest}"
    return "unverified", f"no pinned sha256 and no prefix to check (sha256 {digest})"


def _find(spec: WeightSpec, path: str | os.PathLike[str] | None, directory) -> Path | None:
    if path is not None:
        p = Path(path).expanduser().absolute()
        return p if p.is_file() else None
    return next((p.absolute() for p in candidate_paths(spec, directory) if p.is_file()), None)


def verify(
    spec: str | WeightSpec,
    path: str | os.PathLike[str] | None = None,
    directory: str | os.PathLike[str] | None = None,
) -> Verification:
    """Check the local file of ``spec`` (at ``path`` if given, else where :func:`resolve` looks)."""
    spec = get_spec(spec)
    found = _find(spec, path, directory)
    if found is None:
        where = [Path(path)] if path is not None else candidate_paths(spec, directory)
        extra = f" (nor in {', '.join(map(str, where[1:]))})" if len(where) > 1 else ""
        return Verification(spec.name, where[0], "missing", None, f"not found{extra}")
    digest = sha256_file(found)
    status, message = _check_digest(spec, digest)
    return Verification(spec.name, found, status, digest, message)


def get_command(spec: str | WeightSpec) -> str:
    """The shell command that gets the file.

    ``mmgt-weights fetch <name>``, the spec's own command when it has no URL (e.g. ``mmgt-weights
    train-fgd``), else ``mmgt-weights list -v <name>`` (how to obtain it).
    """
    spec = get_spec(spec)
    if spec.url:
        return f"mmgt-weights fetch {spec.name}"
    return spec.command or f"mmgt-weights list -v {spec.name}"


def _how_to_get(spec: WeightSpec, target: Path) -> str:
    lines = [f"  what:    {spec.description} ({spec.filename})"]
    if spec.url:
        lines.append(f"  from:    {spec.url}")
        lines.append(f"           (or run: {get_command(spec)})")
    else:
        lines.append("  from:    no upstream URL" + (f" (make it: {spec.command})" if spec.command else ""))
    lines.append(f"  licence: {spec.licence}")
    lines.append(f"  put it:  {target}")
    lines.append(f"           (the folder is ${ENV_VAR}, default {DEFAULT_DIR}; or pass its path explicitly)")
    if spec.note:
        lines.append(f"  note:    {spec.note}")
    return "\n".join(lines)


def resolve(
    spec: str | WeightSpec,
    path: str | os.PathLike[str] | None = None,
    directory: str | os.PathLike[str] | None = None,
    check: bool = True,
) -> Path:
    """Local path of a weight file: ``path`` if given, else the weights folder, else the torch hub cache.

    Raises :class:`MissingWeightsError` (saying what to get, from where, under what licence and where to put
    it) when the file is absent, and :class:`WeightsChecksumError` when ``check`` and its sha256 (or hash
    prefix) is wrong.
    """
    spec = get_spec(spec)
    found = _find(spec, path, directory)
    if found is None:
        target = Path(path).expanduser() if path is not None else candidate_paths(spec, directory)[0]
        searched = [target] if path is not None else candidate_paths(spec, directory)
        raise MissingWeightsError(
            f"weights {spec.name!r} not found (looked in: {', '.join(map(str, searched))}).\n"
            + _how_to_get(spec, target),
            spec=spec,
            searched=searched,
        )
    if check:
        v = verify(spec, path=found)
        if v.status == "mismatch":
            raise WeightsChecksumError(
                f"{found}: weights {spec.name!r}: {v.message}. The file is corrupt, truncated or a different "
                f"file; replace it.\n" + _how_to_get(spec, found)
            )
    return found


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return start.startswith((b"<!doctype", b"<html", b"<head", b"<?xml"))


def _download(src: str, out: BinaryIO, desc: str, timeout: float, progress: bool) -> tuple[bytes, str]:
    """Stream ``src`` into the open file ``out`` (fsynced); (its first bytes, its sha256 hex digest)."""
    h = hashlib.sha256()
    head = b""
    request = urllib.request.Request(src, headers={"User-Agent": "mmgt-weights"})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc)
        while chunk := resp.read(_CHUNK):
            if len(head) < 64:
                head += chunk[:64]
            h.update(chunk)
            out.write(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        out.flush()
        os.fsync(out.fileno())
    return head, h.hexdigest()


def _check_download(spec: WeightSpec, src: str, target: Path, tmp: Path, head: bytes, digest: str) -> None:
    """Refuse an empty download, an HTML page or a checksum mismatch."""
    if tmp.stat().st_size == 0:
        raise WeightsError(f"download of {spec.name!r} from {src} is empty")
    if _looks_like_html(head):
        raise WeightsError(
            f"download of {spec.name!r} from {src} returned an HTML page (login or confirmation page?), "
            "not the weight file. Get it by hand.\n" + _how_to_get(spec, target)
        )
    status, message = _check_digest(spec, digest)
    if status == "mismatch":
        raise WeightsChecksumError(f"download of {spec.name!r} from {src}: {message}")


def fetch(
    spec: str | WeightSpec,
    url: str | None = None,
    directory: str | os.PathLike[str] | None = None,
    force: bool = False,
    timeout: float = 60.0,
    progress: bool = False,
) -> Path:
    """Download a weight file into the weights folder and return its path.

    The download goes to a temporary file next to the target, is checked (pinned sha256 or hash prefix; an
    HTML page instead of a weight file is refused) and then renamed into place atomically, so the target is
    either absent or complete. An existing file that verifies is kept unless ``force``.
    """
    spec = get_spec(spec)
    src = url or spec.url
    target = weights_dir(directory) / spec.filename
    if src is None:
        raise WeightsError(f"weights {spec.name!r} have no download URL.\n" + _how_to_get(spec, target))
    if target.is_file() and not force:
        v = verify(spec, path=target)
        if v.status != "mismatch":
            return target
        raise WeightsChecksumError(f"{target}: exists but {v.message}; re-run with --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            head, digest = _download(src, out, spec.filename, timeout, progress)
        _check_download(spec, src, target, tmp, head, digest)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o644 & ~umask)
        os.replace(tmp, target)
    except urllib.error.URLError as e:
        tmp.unlink(missing_ok=True)
        raise WeightsError(
            f"download of {spec.name!r} from {src} failed: {e}\n" + _how_to_get(spec, target)
        ) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
