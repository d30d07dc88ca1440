"""The DirConvGRU as it runs in G equals the naive formulation (the benchmark's baseline): outputs, carried state and gradients, for both variants
and several kernel sizes."""

import pytest
import torch

from lmgan.nets.prediction import VideoPrediction
from lmgan.nets.prediction_naive import naive_forward


@pytest.mark.parametrize("directional, kernel", [(True, 3), (True, 5), (False, 3), (True, 1)])
def test_fast_equals_naive(directional, kernel):
    torch.manual_seed(0)
    vp = VideoPrediction(4, kernel, directional=directional).double()
    with torch.no_grad():   # non-trivial biases and read-out, so every term is exercised
        for p in vp.parameters():
            if p.dim() == 1:
                p.normal_(0, 0.5)
        vp.readout.weight.normal_(0, 0.3)
    x = torch.randn(2, 5, 4, 7, 7, dtype=torch.double, requires_grad=True)
    state = torch.randn(2, vp.n_cells * 4, 7, 7, dtype=torch.double)
    fast, fast_h = vp(x, state)
    naive, naive_h = naive_forward(vp, x, state)
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(fast_h, naive_h, rtol=1e-10, atol=1e-10)
    w = torch.randn_like(fast)
    g_fast = torch.autograd.grad((fast * w).sum(), [x, *vp.parameters()], allow_unused=True)
    g_naive = torch.autograd.grad((naive * w).sum(), [x, *vp.parameters()], allow_unused=True)
    for a, b in zip(g_fast, g_naive):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
