"""The weight registry end to end: lookup order, downloads from a local HTTP server, checksums,
the `.sha256` record of unpinned files, TorchScript loading, and `lmgan weights [--fetch]`.

Nothing leaves 127.0.0.1: every URL a test downloads from is patched to a local server or to a
closed local port (connection refused at once), whatever network the machine has.
"""

import dataclasses
import hashlib
import socket
import urllib.request

import pytest
import torch
from torch import Tensor

from lmgan import weights
from lmgan.cli import main
from lmgan.errors import LmganError

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


class TinyDetector(torch.nn.Module):
    """The I3D TorchScript's call signature, scripted and saved like the real file."""

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> Tensor:
        return x.float().flatten(1)[:, :1].expand(x.shape[0], 400)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Fresh caches per test and none of the weight variables set."""
    monkeypatch.setenv("LMGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for w in weights.WEIGHTS.values():
        monkeypatch.delenv(w.env, raising=False)


@pytest.fixture
def closed_url():
    """A URL on a local port nobody listens on: downloads fail at once, like offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def patch(monkeypatch, name, **changes):
    w = dataclasses.replace(weights.WEIGHTS[name], **changes)
    monkeypatch.setitem(weights.WEIGHTS, name, w)
    return w


def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("no download expected")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path, data=b"weights"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_explicit_path_beats_env_beats_cache(tmp_path, monkeypatch):
    w = weights.WEIGHTS["vgg16"]
    cached = write(weights.cache_dir() / "weights" / w.filename)
    assert weights.locate("vgg16") == cached
    env = write(tmp_path / "env.pth")
    monkeypatch.setenv(w.env, str(env))
    assert weights.locate("vgg16") == env
    explicit = write(tmp_path / "explicit.pth")
    assert weights.locate("vgg16", str(explicit)) == explicit


def test_torch_hub_checkpoint_dir_is_found_first(tmp_path):
    w = weights.WEIGHTS["alexnet"]
    hub = write(tmp_path / "torch" / "hub" / "checkpoints" / w.filename)
    write(weights.cache_dir() / "weights" / w.filename)
    assert weights.locate("alexnet", download=False) == hub


def test_named_paths_that_do_not_exist_are_errors(tmp_path, monkeypatch):
    with pytest.raises(LmganError) as e:
        weights.locate("i3d", str(tmp_path / "nope.pt"))
    assert "nope.pt does not exist" in one_line(e)
    monkeypatch.setenv("LMGAN_I3D_WEIGHTS", str(tmp_path / "gone.pt"))
    with pytest.raises(LmganError) as e:
        weights.locate("i3d")
    assert f"LMGAN_I3D_WEIGHTS={tmp_path / 'gone.pt'} does not exist" in one_line(e)


@pytest.mark.parametrize("name", list(weights.WEIGHTS))
def test_missing_and_offline_names_file_url_and_variable(monkeypatch, closed_url, name):
    w = weights.WEIGHTS[name]
    with pytest.raises(LmganError) as e:
        weights.locate(name, download=False)
    msg = one_line(e)
    assert w.filename in msg and w.url in msg and w.env in msg
    w = patch(monkeypatch, name, url=closed_url + w.filename)
    with pytest.raises(LmganError) as e:
        weights.locate(name)
    msg = one_line(e)
    assert w.filename in msg and w.url in msg and w.env in msg and "could not be downloaded" in msg
    assert not any((weights.cache_dir() / "weights").iterdir())   # no partial file left behind


def test_checksum_mismatch_is_rejected_and_not_cached(monkeypatch, http_server):
    root, base = http_server
    w = weights.WEIGHTS["alexnet"]
    write(root / w.filename, b"not the alexnet weights")
    patch(monkeypatch, "alexnet", url=f"{base}/{w.filename}")
    with pytest.raises(LmganError) as e:
        weights.locate("alexnet")
    assert "fails its sha256 check" in one_line(e) and "LMGAN_ALEXNET_WEIGHTS" in str(e.value)
    assert list((weights.cache_dir() / "weights").iterdir()) == []
    # a pinned full digest is checked the same way
    patch(monkeypatch, "alexnet", sha256_prefix="", sha256="0" * 64)
    with pytest.raises(LmganError, match="fails its sha256 check"):
        weights.locate("alexnet")
    assert list((weights.cache_dir() / "weights").iterdir()) == []


def test_good_download_is_cached_and_found_next_time(monkeypatch, http_server):
    root, base = http_server
    w = weights.WEIGHTS["alexnet"]
    served = root / w.filename
    torch.save({"features.0.weight": torch.ones(2, 3)}, served)
    patch(monkeypatch, "alexnet", url=f"{base}/{w.filename}", sha256_prefix=sha256(served)[:8])
    path = weights.locate("alexnet")
    assert path == weights.cache_dir() / "weights" / w.filename
    assert path.read_bytes() == served.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [w.filename]   # pinned: no record needed
    no_network(monkeypatch)
    assert weights.locate("alexnet") == path
    assert torch.equal(weights.load_state_dict(path, "AlexNet")["features.0.weight"], torch.ones(2, 3))


def test_unpinned_file_gets_a_sha256_record_checked_on_later_loads(monkeypatch, http_server, capsys):
    root, base = http_server
    w = weights.WEIGHTS["i3d"]
    assert w.sha256 is None and w.sha256_prefix == ""   # nothing published to pin (see weights.py)
    served = root / w.filename
    torch.jit.save(torch.jit.script(TinyDetector()), str(served))
    patch(monkeypatch, "i3d", url=f"{base}/{w.filename}?dl=1")
    path = weights.locate("i3d")
    digest = sha256(served)
    record = path.with_name(w.filename + ".sha256")
    assert record.read_text() == f"{digest}  {w.filename}\n"     # sha256sum -c format
    assert digest in capsys.readouterr().err
    no_network(monkeypatch)
    net = weights.load_torchscript("i3d")
    assert isinstance(net, torch.jit.ScriptModule) and not net.training
    assert net(torch.zeros(2, 3, 4, 8, 8), rescale=True, resize=True, return_features=True).shape == (2, 400)
    with open(path, "ab") as f:                                   # the cache changes afterwards
        f.write(b"\0")
    with pytest.raises(LmganError) as e:
        weights.locate("i3d")
    msg = one_line(e)
    assert str(record) in msg and "LMGAN_I3D_WEIGHTS" in msg


def test_load_torchscript_rejects_other_files(tmp_path):
    bad = write(tmp_path / "i3d_torchscript.pt", b"<html>dropbox says no</html>")
    with pytest.raises(LmganError) as e:
        weights.load_torchscript("i3d", str(bad))
    msg = one_line(e)
    assert str(bad) in msg and "not a readable TorchScript file" in msg and weights.WEIGHTS["i3d"].url in msg


def test_status_reports_without_downloading(tmp_path, monkeypatch):
    no_network(monkeypatch)
    env = write(tmp_path / "my-inception.pt")
    monkeypatch.setenv("LMGAN_INCEPTION_WEIGHTS", str(env))
    rows = {r["name"]: r for r in weights.status()}
    assert list(rows) == list(weights.WEIGHTS)
    assert rows["inception"]["path"] == env
    assert rows["inception"]["search"][0] == f"LMGAN_INCEPTION_WEIGHTS={env}"
    i3d = rows["i3d"]
    assert i3d["path"] is None and i3d["problem"] is None
    assert i3d["url"] == weights.WEIGHTS["i3d"].url and i3d["env"] == "LMGAN_I3D_WEIGHTS"
    assert i3d["search"] == [str(p) for p in weights.candidates(weights.WEIGHTS["i3d"])]
    monkeypatch.setenv("LMGAN_I3D_WEIGHTS", str(tmp_path / "nope.pt"))
    assert "does not exist" in {r["name"]: r for r in weights.status()}["i3d"]["problem"]


def test_fetch_all_downloads_every_missing_file_once(monkeypatch, http_server):
    root, base = http_server
    for name, w in weights.WEIGHTS.items():
        served = write(root / w.filename, name.encode() * 1000)
        prefix = sha256(served)[:8] if w.sha256_prefix else ""
        patch(monkeypatch, name, url=f"{base}/{w.filename}", sha256_prefix=prefix)
    paths = weights.fetch_all(progress=False)
    assert paths == [weights.cache_dir() / "weights" / w.filename for w in weights.WEIGHTS.values()]
    assert all(p.read_bytes() == (root / p.name).read_bytes() for p in paths)
    no_network(monkeypatch)
    assert weights.fetch_all(progress=False) == paths


def test_fetch_all_tries_every_file_before_failing(monkeypatch, http_server, closed_url):
    root, base = http_server
    w = weights.WEIGHTS["alexnet"]
    served = write(root / w.filename, b"alexnet")
    patch(monkeypatch, "alexnet", url=f"{base}/{w.filename}", sha256_prefix=sha256(served)[:8])
    for name in ("vgg16", "i3d", "inception"):
        patch(monkeypatch, name, url=closed_url + name)
    failures = []
    assert weights.fetch_all(progress=False, on_error=failures.append) == [
        weights.cache_dir() / "weights" / w.filename]
    assert len(failures) == 3
    with pytest.raises(LmganError) as e:
        weights.fetch_all(progress=False)
    assert one_line(e).startswith("3 of 4 weight files could not be fetched")


def test_cli_lists_the_weights(tmp_path, monkeypatch, capsys):
    no_network(monkeypatch)
    env = write(tmp_path / "v.pth")
    monkeypatch.setenv("LMGAN_VGG16_WEIGHTS", str(env))
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    assert "present" in lines["vgg16"] and str(env) in lines["vgg16"]
    for name in ("alexnet", "i3d", "inception"):
        w = weights.WEIGHTS[name]
        assert "missing" in lines[name] and w.env in lines[name]
        assert str(weights.cache_dir() / "weights" / w.filename) in lines[name] and w.url in out
    assert "lmgan weights --fetch" in out


def test_cli_fetch_offline_is_one_line_per_file_and_exit_2(monkeypatch, capsys, closed_url):
    for name, w in weights.WEIGHTS.items():
        patch(monkeypatch, name, url=closed_url + w.filename)
    assert main(["weights", "--fetch", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(weights.WEIGHTS)
    for line, w in zip(err, weights.WEIGHTS.values()):
        assert line.startswith("lmgan: error: ") and w.filename in line and w.env in line and w.url in line
    assert "Traceback" not in "".join(err)
