"""Truncated back-propagation through consecutive windows (DESIGN §3, R and the prediction layer:
"zero initial states; the states carry over between consecutive training windows (detached)";
data/dataset.py TrainStreams: a stream that restarts elsewhere starts from zero states)."""

from __future__ import annotations

import torch

from support import random_video_data
from lmgan.config import Config, apply_overrides, validate


def _rows(state: dict, b: int) -> list[torch.Tensor]:
    """Stream b's part of a model state: R's layers are [d, B, M], the prediction layer's [B, ...]."""
    return [s[:, b] for s in state["motion"]] + [state["vp"][b]]


def test_each_stream_carries_its_own_state_detached_and_restarts_from_zero(tmp_path):
    """Step after step, the state a training step starts from is, for every stream, the state the
    previous step ended with (values equal, no graph) when the stream goes on to the next window,
    and zeros when it restarts (at the start, at the end of the training part, every
    restart_every windows): each stream's row, and only its row."""
    from lmgan.training.loop import Trainer
    cfg = validate(apply_overrides(Config(), dict(
        image_size=32, seq_len=8, n_mels=16, rnn_layers=2, g_channel_base=128, d_channel_base=128,
        max_channels=16, lambda_pl=0, d_norm="layer", batch=2, restart_every=3, iters=5), "test"))
    trainer = Trainer(cfg, random_video_data(cfg, windows=5, train_windows=4), tmp_path / "run")
    calls, generate = [], trainer.model.generate

    def recording(feats, state):
        out, new = generate(feats, state)
        calls.append((state, new))
        return out, new
    trainer.model.generate = recording
    resets = []
    original_next = trainer.streams.next

    def next_windows():
        starts, reset = original_next()
        resets.append(reset)
        return starts, reset
    trainer.streams.next = next_windows
    for _ in range(5):
        trainer.step()
    assert len(calls) == 5
    assert any(any(r) and not all(r) for r in resets), resets      # one stream restarts, the other goes on
    for k, reset in enumerate(resets):
        start = calls[k][0]
        for b in range(cfg.batch):
            rows = _rows(start, b)
            if reset[b]:
                assert all((r == 0).all() for r in rows), (k, b)
            else:
                before = _rows(calls[k - 1][1], b)
                for r, p in zip(rows, before):
                    torch.testing.assert_close(r, p.detach(), atol=0, rtol=0)
                    assert not r.requires_grad
                assert any(r.abs().sum() > 0 for r in rows)
