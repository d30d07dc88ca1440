"""Evaluation end to end: the registry inside training, `lmgan eval` (Table 1 and 2), the cache
of real statistics. Small TorchScript detectors with the real files' call signatures stand in for
I3D and Inception; their numbers exist only inside these tests."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from support import train_cli
from lmgan.cli import main
from lmgan.config import Config
from lmgan.metrics import evaluator as ev

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")


class TinyI3D(torch.nn.Module):
    """forward() of StyleGAN-V's i3d_torchscript.pt, with a small random 3D conv net inside."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 400)

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> Tensor:
        x = x.float()
        if rescale:
            x = x / 255 * 2 - 1
        if resize:
            x = F.interpolate(x, size=(x.shape[2], 224, 224), mode="trilinear", align_corners=False)
        x = F.avg_pool3d(x, (1, 8, 8))                      # keep the stand-in cheap on a CPU
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3, 4)))


class TinyInception(torch.nn.Module):
    """forward() of NVlabs' inception-2015-12-05.pt (0..255 input, 2048-d features)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, stride=2)
        self.fc = torch.nn.Linear(16, 2048)

    def forward(self, img: Tensor, return_features: bool = False) -> Tensor:
        x = (img.float() - 128) / 128
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("det")
    torch.jit.save(torch.jit.script(TinyI3D()), str(d / "i3d.pt"))
    torch.jit.save(torch.jit.script(TinyInception()), str(d / "inception.pt"))
    return d / "i3d.pt", d / "inception.pt"


@pytest.fixture
def weights_env(detectors, monkeypatch):
    monkeypatch.setenv("LMGAN_I3D_WEIGHTS", str(detectors[0]))
    monkeypatch.setenv("LMGAN_INCEPTION_WEIGHTS", str(detectors[1]))


def rows(run, kind):
    from lmgan.training.artifacts import read_history
    return [r for r in read_history(run / "history.jsonl") if r["kind"] == kind]


def test_training_logs_every_configured_metric_under_its_name(tmp_path, demo_clip, weights_env):
    out = tmp_path / "run"
    assert train_cli("--video", demo_clip, "--out", out, "--preset", "tiny", "--set", "iters=10",
                     "--set", "seq_len=16", "--set", "train_frac=0.5", "--set", "eval_metrics=ssim,psnr,fvd,fid,fdd") == 0
    last = rows(out, "eval")[-1]
    for name in ("ssim", "ssim_std", "psnr", "fvd", "fid", "fdd"):
        assert np.isfinite(last[name]), name
    assert last["fvd"] > 0 and last["fdd"] > 0        # 10 iterations are far from the real clip (0 is a clamp)


def test_real_statistics_are_cached_and_reused(demo_clip, weights_env):
    from lmgan.data.dataset import load_video_data
    cfg = Config(image_size=32, seq_len=16, n_mels=16)
    data = load_video_data(demo_clip, cfg, progress=False)
    key = f"{data.key}-L16-w0-test"
    fake = torch.rand(16, 3, 32, 32) * 2 - 1
    real = torch.rand(16, 3, 32, 32) * 2 - 1
    first = ev.Evaluator(["fdd", "fvd"], torch.device("cpu"), stats_key=key)
    assert first.cached == {"fdd": None, "fvd": None}
    first.add(fake, real)
    first.add(real, fake)
    a = first.result()
    assert ev.stats_path(key, "fvd").is_file() and ev.stats_path(key, "fdd").is_file()
    second = ev.Evaluator(["fdd", "fvd"], torch.device("cpu"), stats_key=key)
    assert all(v is not None for v in second.cached.values())      # hit: no real windows needed
    second.add(fake, torch.full_like(real, 5.0))                     # real frames are ignored now
    second.add(real, torch.full_like(real, 5.0))
    b = second.result()
    assert not second.real["fvd"] and a == pytest.approx(b)


def test_eval_command_table1_json(capsys, tiny_run, weights_env):
    rc = main(["eval", "--quiet", "--checkpoint", str(tiny_run), "--metrics", "ssim,psnr,fdd", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    t1 = out["table1"]
    assert t1["windows"] == 2 and 0 < t1["ssim"] <= 1 and t1["ssim_std"] > 0 and t1["fdd"] > 0


def test_eval_repeats_give_std_for_set_metrics(capsys, tiny_run):
    rc = main(["eval", "--quiet", "--checkpoint", str(tiny_run), "--metrics", "fdd", "--repeats", "3", "--json"])
    assert rc == 0
    t1 = json.loads(capsys.readouterr().out)["table1"]
    assert t1["repeats"] == 3 and t1["fdd_std"] > 0


def test_eval_command_table2_ood_fid(capsys, tmp_path, tiny_run, weights_env):
    from support import write_sound
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    write_sound(sounds / "a.wav", 6.0, "pcm_s16le", rate=22050, layout="mono")
    write_sound(sounds / "b.flac", 3.0, "flac", rate=44100, layout="stereo")
    (sounds / "notes.txt").write_text("not a sound")
    rc = main(["eval", "--quiet", "--checkpoint", str(tiny_run), "--metrics", "ssim", "--ood-audio", str(sounds),
               "--ood-clips", "6", "--json"])
    assert rc == 0
    t2 = json.loads(capsys.readouterr().out)["table2"]
    assert t2["clips"] == 6 and t2["frames"] >= 6 * 20 and t2["fid_ood"] > 0     # FID is clamped at 0


def test_too_few_heldout_clips_for_fvd_fail_before_training(capsys, tmp_path, demo_clip, weights_env):
    rc = train_cli("--video", demo_clip, "--out", tmp_path / "r", "--preset", "tiny", "--set", "seq_len=16",
                   "--set", "eval_metrics=ssim,fvd")
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "fvd: 1 held-out window(s) of 16 frames give 1 feature vector(s)" in err[-1]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, words", [
    (["--metrics", "ssim,fvd2"], "unknown metric 'fvd2'"),
    (["--metrics", "fvd"], "LMGAN_I3D_WEIGHTS"),
    (["--ood-audio", "EMPTY"], "no sound files"),
    (["--weights", "i3d"], "expected NAME=PATH"),
])
def test_eval_bad_input(capsys, tmp_path, tiny_run, args, words):
    (tmp_path / "empty").mkdir()
    args = [a.replace("EMPTY", str(tmp_path / "empty")) for a in args]
    rc = main(["eval", "--quiet", "--checkpoint", str(tiny_run), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and words in err[0]
