"""Weights registry: listing, verification, missing-file errors, atomic fetch from a file:// URL."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from mmgt_eval import weights_cli
from mmgt_eval.weights import (
    REGISTRY,
    MissingWeightsError,
    WeightsChecksumError,
    WeightsError,
    WeightSpec,
    candidate_paths,
    fetch,
    resolve,
    verify,
    weights_dir,
)

PAYLOAD = b"\x80\x02fake weights written by the test\n" * 100
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()

EXPECTED = {
    "inception_fid": "pt_inception-2015-12-05-6726825d.pth",
    "i3d_styleganv": "i3d_torchscript.pt",
    "i3d_videogpt": "i3d_pretrained_400.pt",
    "syncnet_v2": "syncnet_v2.model",
    "s3fd": "sfd_face.pth",
    "lpips_alexnet": "alexnet-owt-7be5be79.pth",
    "lpips_vgg16": "vgg16-397923af.pth",
    "fgd_autoencoder": "fgd_autoencoder.pt",
}


def _spec(**kw) -> WeightSpec:
    """A test-local spec (the registry itself is not touched)."""
    base = dict(
        name="fake_net",
        filename="fake_net.bin",
        sha256=None,
        url="https://example.invalid/fake_net.bin",
        licence="test licence (do not redistribute)",
        description="a fake network",
        used_by=("fake",),
    )
    return WeightSpec(**{**base, **kw})


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No real weights folder or torch hub cache leaks into the tests."""
    monkeypatch.setenv("MMGT_WEIGHTS", str(tmp_path / "mmgt_weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


# --------------------------------------------------------------------------- registry contents
def test_registry_has_every_feature_network():
    assert {n: s.filename for n, s in REGISTRY.items()} == EXPECTED
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.licence and spec.description and spec.used_by
        assert spec.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        if spec.url is None:
            assert spec.note, f"{name}: an entry without URL must say how to obtain the file"
    # torch-hub style names carry the sha256 prefix; the registry uses exactly that prefix
    assert REGISTRY["inception_fid"].sha256_prefix == "6726825d"
    assert REGISTRY["lpips_alexnet"].sha256_prefix == "7be5be79"
    assert REGISTRY["lpips_vgg16"].sha256_prefix == "397923af"
    assert REGISTRY["fgd_autoencoder"].url is None


def test_weights_dir_env_and_override(tmp_path, monkeypatch):
    from tests.helpers.shared import compose_config

    assert weights_dir() == tmp_path / "mmgt_weights"
    assert weights_dir(tmp_path / "x") == tmp_path / "x"
    same = compose_config("eval", ["generated=x"], tmp_path / "run")  # mmgt-eval's default: paths.weights_dir
    assert (
        Path(same.weights_dir) == weights_dir()
        and same.paths.pretrained_dir == f"{same.weights_dir}/pretrained"
    )
    monkeypatch.delenv("MMGT_WEIGHTS")
    assert weights_dir() == Path("~/.cache/mmgt/weights").expanduser()
    assert Path(compose_config("eval", ["generated=x"], tmp_path / "run").weights_dir) == weights_dir()


def test_cli_list_shows_every_entry(capsys, tmp_path):
    assert weights_cli.main(["list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name, filename in EXPECTED.items():
        assert name in out and filename in out
    assert "prefix 6726825d" in out
    assert weights_cli.main(["list", "-v", "syncnet_v2"]) == 0
    assert "do not redistribute" in capsys.readouterr().out
    assert weights_cli.main(["list", "no_such_net"]) == 2
    assert "registered:" in capsys.readouterr().err


# --------------------------------------------------------------------------- verify / resolve
def test_verify_prefix_ok_and_mismatch(tmp_path):
    good = _spec(filename=f"fake_net-{PAYLOAD_SHA[:8]}.bin", sha256_prefix=PAYLOAD_SHA[:8])
    (tmp_path / good.filename).write_bytes(PAYLOAD)
    v = verify(good, directory=tmp_path)
    assert (v.status, v.ok, v.sha256) == ("prefix-ok", True, PAYLOAD_SHA)
    assert "no pinned sha256; prefix ok" in v.message
    assert resolve(good, directory=tmp_path) == tmp_path / good.filename

    bad = _spec(filename="fake_net-deadbeef.bin", sha256_prefix="deadbeef")
    (tmp_path / bad.filename).write_bytes(PAYLOAD)
    v = verify(bad, directory=tmp_path)
    assert (v.status, v.ok) == ("mismatch", False)
    assert "prefix mismatch" in v.message and PAYLOAD_SHA in v.message
    with pytest.raises(WeightsChecksumError, match="deadbeef") as e:
        resolve(bad, directory=tmp_path)
    assert str(tmp_path / bad.filename) in str(e.value)
    assert resolve(bad, directory=tmp_path, check=False) == tmp_path / bad.filename


def test_verify_pinned_sha256(tmp_path):
    (tmp_path / "fake_net.bin").write_bytes(PAYLOAD)
    assert verify(_spec(sha256=PAYLOAD_SHA), directory=tmp_path).status == "ok"
    v = verify(_spec(sha256="0" * 64), directory=tmp_path)
    assert v.status == "mismatch" and "sha256 mismatch" in v.message
    v = verify(_spec(), directory=tmp_path)  # nothing to check against: honest, not "ok"
    assert v.status == "unverified" and v.ok and PAYLOAD_SHA in v.message
    # an explicit path wins over the folder
    other = tmp_path / "elsewhere.bin"
    other.write_bytes(b"other")
    assert verify(_spec(), path=other).sha256 == hashlib.sha256(b"other").hexdigest()


def test_missing_weights_error_says_what_where_and_licence(tmp_path):
    spec = _spec()
    with pytest.raises(MissingWeightsError) as e:
        resolve(spec, directory=tmp_path / "w")
    msg = str(e.value)
    for part in (
        "fake_net.bin",
        spec.url,
        spec.licence,
        str(tmp_path / "w" / "fake_net.bin"),
        "MMGT_WEIGHTS",
    ):
        assert part in msg
    assert isinstance(e.value, FileNotFoundError)
    assert verify(spec, directory=tmp_path / "w").status == "missing"
    # a registered entry: the default folder comes from $MMGT_WEIGHTS
    with pytest.raises(MissingWeightsError, match=re.escape(str(tmp_path / "mmgt_weights"))) as e:
        resolve("syncnet_v2")
    assert "robots.ox.ac.uk" in str(e.value) and "do not redistribute" in str(e.value)
    with pytest.raises(MissingWeightsError, match="no upstream URL"):
        resolve("fgd_autoencoder")


def test_torch_hub_cache_is_searched(tmp_path):
    spec = _spec(filename=f"fake_net-{PAYLOAD_SHA[:8]}.bin", sha256_prefix=PAYLOAD_SHA[:8], torch_hub=True)
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    assert candidate_paths(spec)[1] == hub / spec.filename
    hub.mkdir(parents=True)
    (hub / spec.filename).write_bytes(PAYLOAD)
    assert resolve(spec) == hub / spec.filename
    assert resolve(_spec(torch_hub=False, filename=spec.filename), check=False, path=hub / spec.filename)


# --------------------------------------------------------------------------- fetch
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_fetch_from_file_url_verifies_and_renames_atomically(tmp_path):
    src = tmp_path / "mirror" / "upstream.bin"
    src.parent.mkdir()
    src.write_bytes(PAYLOAD)
    spec = _spec(filename=f"fake_net-{PAYLOAD_SHA[:8]}.bin", sha256_prefix=PAYLOAD_SHA[:8], url=src.as_uri())
    dest = tmp_path / "w"
    path = fetch(spec, directory=dest)
    assert path == dest / spec.filename and path.read_bytes() == PAYLOAD
    assert _leftovers(dest) == []
    assert verify(spec, directory=dest).status == "prefix-ok"
    # an existing good file is kept (no download: the source may even be gone)
    src.unlink()
    assert fetch(spec, directory=dest) == path


def test_fetch_refuses_wrong_checksum_and_keeps_old_file(tmp_path):
    src = tmp_path / "upstream.bin"
    src.write_bytes(b"something else entirely")
    dest = tmp_path / "w"
    spec = _spec(sha256=PAYLOAD_SHA, url=src.as_uri())
    with pytest.raises(WeightsChecksumError, match="sha256 mismatch"):
        fetch(spec, directory=dest)
    assert list(dest.iterdir()) == []  # neither the target nor a temporary file
    # a good file in place survives a failed forced re-download untouched
    (dest / spec.filename).write_bytes(PAYLOAD)
    with pytest.raises(WeightsChecksumError):
        fetch(spec, directory=dest, force=True)
    assert (dest / spec.filename).read_bytes() == PAYLOAD and _leftovers(dest) == []


def test_fetch_refuses_html_and_reports_unreachable_urls(tmp_path):
    page = tmp_path / "page.html"
    page.write_bytes(b"  <!DOCTYPE html><html><body>Sign in to download</body></html>")
    with pytest.raises(WeightsError, match="HTML page"):
        fetch(_spec(url=page.as_uri()), directory=tmp_path / "w")
    assert list((tmp_path / "w").iterdir()) == []
    with pytest.raises(WeightsError, match="failed") as e:
        fetch(_spec(url=(tmp_path / "absent.bin").as_uri()), directory=tmp_path / "w")
    assert str(tmp_path / "w" / "fake_net.bin") in str(e.value)  # says where to put a manual download
    with pytest.raises(WeightsError, match="no download URL"):
        fetch("fgd_autoencoder", directory=tmp_path / "w")


def test_cli_fetch_and_verify(tmp_path, capsys):
    src = tmp_path / "ae.pt"
    src.write_bytes(PAYLOAD)
    dest = tmp_path / "w"
    # registry entry without upstream URL: --url supplies one
    assert weights_cli.main(["fetch", "fgd_autoencoder", "--dir", str(dest), "--url", src.as_uri()]) == 0
    assert (dest / "fgd_autoencoder.pt").read_bytes() == PAYLOAD
    assert "unverified" in capsys.readouterr().out
    # a file whose content does not match its name's hash prefix fails verification
    (dest / "alexnet-owt-7be5be79.pth").write_bytes(PAYLOAD)
    assert weights_cli.main(["verify", "lpips_alexnet", "fgd_autoencoder", "--dir", str(dest)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"lpips_alexnet\s+mismatch", out) and re.search(r"fgd_autoencoder\s+unverified", out)
    # verify without names lists missing files without failing; naming a missing one fails
    (dest / "alexnet-owt-7be5be79.pth").unlink()
    assert weights_cli.main(["verify", "--dir", str(dest)]) == 0
    assert "missing" in capsys.readouterr().out
    assert weights_cli.main(["verify", "syncnet_v2", "--dir", str(dest)]) == 1
    assert weights_cli.main(["fetch", "a", "b", "--url", src.as_uri()]) == 2


def test_train_fgd_writes_a_loadable_autoencoder(tmp_path: Path) -> None:
    from mmgt_eval.pose_autoencoder import load_pose_autoencoder
    from mmgt_prep.toy import generate_toy_dataset

    store = tmp_path / "store"
    generate_toy_dataset(store, n_speakers=2, clips_per_speaker=2, seconds=3.0, size=32, progress=False)
    out = tmp_path / "w" / "fgd_autoencoder.pt"
    args = ["train-fgd", str(store), "--window", "20", "--epochs", "3", "--out", str(out)]
    assert weights_cli.main(args) == 0
    model, meta = load_pose_autoencoder(out)
    assert meta["window"] == 20 and meta["training"]["split"] == "train" and meta["training"]["clips"] == 2
    assert weights_cli.main(["train-fgd", str(store), "--split", "val", "--out", str(out)]) == 2  # no clips
