"""The DirConvGRU written the obvious way, kept as the benchmark's baseline and the equality
test's reference for lmgan.nets.prediction.VideoPrediction (same parameters, same result).

Frame by frame and cell by cell; a directional K×K kernel, whose non-zero entries are the centre
line and one side, is applied as its K//2 + 1 lines (K×1 columns for h±, 1×K rows for v±), each
its own convolution, shifted into place and summed. The fast layer instead runs each axis'
pair of cells as one dense masked convolution over a doubled batch (the - cell on mirrored
input), the input gates for the whole window at once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .prediction import CELLS, VideoPrediction


def _shift(y: Tensor, offset: int, dim: int) -> Tensor:
    """out[..., i, ...] = y[..., i + offset, ...] along dim (-1 or -2), zero outside."""
    if offset == 0:
        return y
    n = y.shape[dim]
    moved = y.narrow(dim, offset, n - offset) if offset > 0 else y.narrow(dim, 0, n + offset)
    pad = [0, 0, 0, 0]
    side = (1 if offset > 0 else 0) + (0 if dim == -1 else 2)
    pad[side] = abs(offset)
    return F.pad(moved, pad)


def _directional_conv(x: Tensor, w: Tensor, b: Tensor, axis: str) -> Tensor:
    """x ⋆ w for a kernel non-zero on one half-plane: one line convolution per kept line."""
    k = w.shape[-1]
    ctr = k // 2
    out = b.view(1, -1, 1, 1).expand(x.shape[0], -1, x.shape[-2], x.shape[-1])
    for j in range(k):
        line = w[:, :, :, j:j + 1] if axis == "h" else w[:, :, j:j + 1, :]
        if not line.any():      # the masked half: nothing to convolve
            continue
        pad = (0, 0, ctr, ctr) if axis == "h" else (ctr, ctr, 0, 0)
        y = F.conv2d(F.pad(x, pad), line)
        out = out + _shift(y, j - ctr, -1 if axis == "h" else -2)
    return out


def _conv(x: Tensor, w: Tensor, b: Tensor, cell: str) -> Tensor:
    if cell == "c":
        return F.conv2d(x, w, b, padding=w.shape[-1] // 2)
    return _directional_conv(x, w, b, "h" if cell.startswith("h") else "v")


def naive_forward(vp: VideoPrediction, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
    """Same contract as VideoPrediction.forward, computed with vp's own parameters."""
    b, t, c, n, _ = x.shape
    cells = CELLS if vp.directional else ("c",)
    wx, bx, wh, bh = vp._weights()
    g = 3 * c
    hs = list(state.view(b, len(cells), c, n, n).unbind(1))
    outs = []
    for i in range(t):
        xt = x[:, i]
        for j, cell in enumerate(cells):
            gx = _conv(xt, wx[j * g:(j + 1) * g], bx[j * g:(j + 1) * g], cell)
            gh = _conv(hs[j], wh[j * g:(j + 1) * g], bh[j * g:(j + 1) * g], cell)
            xr, xz, xn = gx.split(c, 1)
            hr, hz, hn = gh.split(c, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            cand = torch.tanh(xn + r * hn)
            hs[j] = (1 - z) * cand + z * hs[j]
        ro = vp.readout(torch.cat(hs, 1))
        xp, a = ro[:, :c], torch.sigmoid(ro[:, c:])
        outs.append(a * xt + (1 - a) * xp)
    return torch.stack(outs, 1), torch.cat(hs, 1)
