"""fdd separates smooth motion from flicker, shuffled time, jitter and frozen video, with no weights."""

import math

import numpy as np
import pytest
import torch

from lmgan.errors import LmganError
from lmgan.metrics import REGISTRY
from lmgan.metrics.frechet import frechet_distance, gaussian
from lmgan.metrics.temporal import FrameDifferenceFeatures

N, T, S = 48, 9, 32     # 48·8 = 384 frame pairs > 195 feature dims: a full-rank covariance


def moving_clips(seed, n=N, t=T, s=S):
    """A drifting sine grating plus a coloured blob on a straight path: smooth motion, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, s), torch.linspace(-1, 1, s), indexing="ij")
    ts = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1)
    k = 2 + 4 * torch.rand(n, 2, 1, 1, 1, generator=g)
    speed = 0.3 * torch.randn(n, 1, 1, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, 1, 1, generator=g)
    grating = torch.sin(math.pi * k[:, 0] * xx + k[:, 1] * yy + phase + speed * ts)   # [n, t, s, s]
    start, vel = 1.2 * torch.rand(n, 2, 1, generator=g) - 0.6, 0.08 * torch.randn(n, 2, 1, generator=g)
    centre = (start + vel * ts.view(1, 1, t))[..., None, None]                        # [n, 2, t, 1, 1]
    blob = torch.exp(-((xx - centre[:, 0]) ** 2 + (yy - centre[:, 1]) ** 2) / 0.08)
    colour = torch.rand(n, 1, 3, 1, 1, generator=g)
    tint = torch.tensor([1.0, 0.6, 0.3]).view(1, 1, 3, 1, 1)
    return (0.4 * grating[:, :, None] * tint + 1.2 * blob[:, :, None] * colour - 0.4).clamp(-1, 1)


@pytest.fixture(scope="module")
def fdd():
    fx = FrameDifferenceFeatures("cpu")
    real = gaussian(fx(moving_clips(0)))
    return lambda clips: frechet_distance(*gaussian(fx(clips)), *real)


def test_features_shape_and_type():
    f = FrameDifferenceFeatures("cpu", grid=4)(moving_clips(1, n=2, t=5, s=24))
    assert f.dtype == np.float64 and f.shape == (2 * 4, 3 * 4 * 4 + 3)
    assert FrameDifferenceFeatures.weights == ()
    static = torch.zeros(1, 3, 3, 16, 16)
    assert not FrameDifferenceFeatures("cpu")(static).any()


def test_fdd_ranks_broken_motion_above_real_motion(fdd):
    g = torch.Generator().manual_seed(7)
    real = moving_clips(0)
    broken = {
        "shuffled": torch.stack([c[torch.randperm(T, generator=g)] for c in real]),
        "flicker": (real + 0.1 * torch.randn(N, T, 1, 1, 1, generator=g)).clamp(-1, 1),
        "frozen": real[:, :1].expand(-1, T, -1, -1, -1),
        "jitter": torch.stack([torch.roll(f, int(torch.randint(-2, 3, (), generator=g)), dims=2)
                               for f in real.flatten(0, 1)]).view_as(real),
    }
    same, other_draw = fdd(real), fdd(moving_clips(1))     # identical clips; new clips, same motion
    assert same < 1e-6 * other_draw
    for name, clips in broken.items():
        assert fdd(clips) > 3 * other_draw, name          # measured 7× (frozen) to 50× (jitter)


def test_registry_builds_it_without_weights():
    m = REGISTRY["fdd"]
    assert m.kind == "set" and not m.higher_is_better and m.weights == ()
    fx = m.build(torch.device("cpu"), {})
    assert fx(moving_clips(2, n=1, t=4)).shape == (3, 195)     # the evaluator passes one window


@pytest.mark.parametrize("shape", [(9, 3, 32, 32), (2, 1, 3, 32, 32), (2, 4, 1, 32, 32)])
def test_bad_clip_shapes_are_refused(shape):
    with pytest.raises(LmganError, match="expected"):
        FrameDifferenceFeatures("cpu")(torch.zeros(shape))
