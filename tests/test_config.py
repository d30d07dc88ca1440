"""Config: presets, overrides, and every out-of-range value named in one line."""

import pytest

from lmgan.config import Config, apply_overrides, build_config, parse_sets, presets, validate
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


def test_each_rule_reads_the_roles_declared_on_the_fields():
    """The cache key, resume, validation and the sweep read their keys from the fields' roles;
    these are the lists they replaced (a change here changes what a cache hit or a resume means)."""
    from lmgan.config import DATA, POSITIVE, RESUMABLE_KEYS, keys_with
    from lmgan.sweep.space import NOT_SEARCHABLE
    assert keys_with(DATA) == ("image_size", "fps", "crop", "sample_rate", "n_mels", "win_ms", "hop_ms",
                               "chunk_frames", "feature")
    assert set(Config().data_key()) == set(keys_with(DATA))
    assert RESUMABLE_KEYS == {"iters", "log_every", "eval_every", "sample_every", "ckpt_every", "keep_checkpoints",
                              "eval_metrics", "eval_windows", "device", "vgg_weights", "precision", "ema_decay"}
    assert NOT_SEARCHABLE == RESUMABLE_KEYS - {"precision", "ema_decay"} | {"seed"}
    assert set(keys_with(POSITIVE)) >= {"seq_len", "batch", "iters", "keep_checkpoints"}
    for key in keys_with(POSITIVE):
        with pytest.raises(LmganError, match=f"{key}=0 must be a positive integer"):
            validate(apply_overrides(Config(), {key: 0}))


def test_a_misspelt_metric_is_named_with_the_closest_one():
    from lmgan.metrics import lookup
    with pytest.raises(LmganError, match=r"--objective: unknown metric 'motoin_corr'; did you mean 'motion_corr'\?"):
        lookup(["motoin_corr"], "--objective")
    assert [m.name for m in lookup(["fvd", "ssim"], "x")] == ["fvd", "ssim"]
