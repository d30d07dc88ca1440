"""The moving average of G and R's weights (`ema_decay`): what it averages, that evaluations and
renders read it, and that it is checkpointed with the run."""

from __future__ import annotations

import pytest
import torch

from support import random_video_data
from lmgan.config import Config, apply_overrides, validate
from lmgan.errors import LmganError
from lmgan.render import model_from_checkpoint
from lmgan.training import checkpoint
from lmgan.training.loop import Trainer


def _trainer(tmp_path, **keys) -> Trainer:
    cfg = validate(apply_overrides(Config(), dict(
        image_size=32, seq_len=8, n_mels=16, rnn_layers=2, g_channel_base=128, d_channel_base=128,
        max_channels=16, lambda_pl=0, lambda_l2=10, d_norm="layer", iters=4, eval_metrics=["ssim"],
        **keys), "test"))
    return Trainer(cfg, random_video_data(cfg, windows=6, train_windows=4), tmp_path / "run")


def test_the_average_follows_the_trained_weights_step_by_step(tmp_path):
    """After each step every averaged weight is decay · its previous value + (1 − decay) · the
    trained weight, starting from the initial weights; the trained networks are untouched by it."""
    decay = 0.8
    trainer = _trainer(tmp_path, ema_decay=decay)
    want = [p.detach().clone() for p in trainer.model.parameters()]
    for _ in range(3):
        trainer.step()
        want = [decay * w + (1 - decay) * p.detach() for w, p in zip(want, trainer.model.parameters())]
    got = list(trainer.model_ema.parameters())
    assert all(torch.allclose(a, b, rtol=0, atol=1e-6) for a, b in zip(got, want))
    assert not any(torch.equal(a, p) for a, p in zip(got, trainer.model.parameters()))
    assert not any(p.requires_grad for p in got)
    assert torch.equal(trainer.model_ema.feat_mean, trainer.model.feat_mean)


def test_without_it_there_is_no_copy_and_evaluations_read_the_trained_weights(tmp_path):
    trainer = _trainer(tmp_path)
    assert trainer.model_ema is None and trainer.eval_model is trainer.model
    trainer.step()
    assert "model_ema" not in trainer.state_dict()


def test_evaluations_checkpoints_and_renders_use_the_average(tmp_path):
    trainer = _trainer(tmp_path, ema_decay=0.5)
    for _ in range(2):
        trainer.step()
    assert trainer.eval_model is trainer.model_ema
    rec = trainer.evaluate()
    # the same held-out pass on the trained weights gives another score: the average was scored
    raw = _trainer(tmp_path)
    raw.model.load_state_dict(trainer.model.state_dict())
    assert raw.evaluate()["ssim"] != rec["ssim"]
    path = trainer.save_checkpoint()
    ck = checkpoint.load(path)
    model, _ = model_from_checkpoint(ck, path, torch.device("cpu"))
    for name, p in model.state_dict().items():
        assert torch.equal(p, trainer.model_ema.state_dict()[name]), name


def test_a_run_that_starts_averaging_on_a_resume_starts_from_its_weights(tmp_path):
    before = _trainer(tmp_path)
    before.step()
    ck = before.state_dict()
    after = _trainer(tmp_path, ema_decay=0.9)
    after.load_state_dict(ck)
    for a, b in zip(after.model_ema.parameters(), before.model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("value", [1.0, -0.1])
def test_a_decay_outside_zero_to_one_is_refused(value):
    with pytest.raises(LmganError, match="ema_decay"):
        validate(apply_overrides(Config(), {"ema_decay": value}, "test"))
