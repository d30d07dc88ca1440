"""Config: presets, overrides, and every out-of-range value named in one line."""

import pytest

from lmgan.config import build_config, parse_sets, presets
from lmgan.errors import LmganError


def test_defaults_are_the_papers_full_model():
    cfg = build_config()
    assert (cfg.image_size, cfg.seq_len, cfg.rnn_layers, cfg.noise_e, cfg.vp, cfg.vp_kernel) == (128, 32, 3, 2, "dirconvgru", 3)
    assert cfg.mfs and cfg.sac and cfg.acin
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.lambda_gp) == (1e-4, 4e-4, 0.3, 10.0)


def test_presets_and_sets():
    assert {"demo", "tiny", "paper-128", "paper-256"} <= set(presets())
    cfg = build_config("demo", sets=["vp=convgru", "acin=false", "lr_g=2e-4", "eval_metrics=ssim"])
    assert cfg.lambda_pl == 0 and cfg.image_size == 64
    assert cfg.vp == "convgru" and cfg.acin is False and cfg.lr_g == 2e-4 and cfg.eval_metrics == ["ssim"]
    assert parse_sets(["crop=[10, 20, 100, 100]"]) == {"crop": [10, 20, 100, 100]}


@pytest.mark.parametrize("setting, words", [
    ("vp_kernel=4", "odd"), ("image_size=48", "power of two"), ("image_size=1024", "power of two"),
    ("lr_g=-1e-4", "positive"), ("lr_d=0", "positive"), ("vp=lstm", "one of"), ("seq_len=1", "at least 2"),
    ("bogus=1", "unknown config key"), ("iters=abc", "not a valid int"), ("mfs=maybe", "not a valid bool"),
    ("eval_metrics=fvd2", "unknown metric"),
])
def test_bad_values(setting, words):
    with pytest.raises(LmganError, match=words) as e:
        build_config(sets=[setting])
    assert "\n" not in str(e.value)


def test_malformed_yaml(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("image_size: [64\n")
    with pytest.raises(LmganError, match="malformed YAML"):
        build_config(config_file=str(bad))
    with pytest.raises(LmganError, match="unknown preset"):
        build_config("nope")
