"""The video-prediction layer: ConvGRUs over a window's activations (docs/model.md).

Variants: 'dirconvgru' = four directional cells (h+, h-, v+, v-) + one centred K×K cell;
'convgru' = the centred cell alone. Cell order everywhere (state channels, weights):
``CELLS`` = (h+, h-, v+, v-, c), each P = C channels.

A directional cell's input and hidden kernels are masked to the centre line and one side along
one axis, so each output pixel of h+ depends only on pixels at columns <= its own (information
flows left → right; h- right → left, v+ top → bottom, v- bottom → top), at every step, through
the recurrence too. The ± cells of one axis share one parameter set, the - kernel being the +
kernel mirrored, so the layer is equivariant to mirroring by construction and holds three
parameter sets (h, v, c). Choices left open by the spec:
- GRU in PyTorch's formulation (reset gate applied to W_hn h + b_hn), both convs biased.
- The two 1×1 read-outs (x', 5P → C and a, 5P → 1) are one conv with C + 1 outputs; output
  channel C is the gate.
- Masked-out kernel entries are zeroed at init and stay zero (the mask is also applied in
  forward, so they get no gradient), so the stored parameters equal the effective ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["VideoPrediction", "CELLS"]

CELLS = ("h+", "h-", "v+", "v-", "c")


class VideoPrediction(nn.Module):
    """x [B, T, C, N, N] + state → (out_t = a_t ⊙ x_t + (1 - a_t) ⊙ x'_t, new_state).

    How it runs: a - cell is its + cell mirrored, so it is run as the + cell on mirrored input
    and mirrored state. Each axis' pair is then one masked convolution over a doubled batch: no
    grouped convolution (oneDNN's backward of one is slow). In the pair's own frame (_to_own)
    its kernel loses its zero rows, (K//2+1)×K, oneDNN's fast path (cropped to K×(K//2+1)
    columns it ran slower than the full kernel). The input gates of the whole window
    are three such convolutions (h pair, v pair, centred), the loop over T does three small
    ones for the hidden gates, and one 1×1 convolution reads all frames out. (One grouped
    convolution for all five cells per step was measured slower on the CPU and dropped.)
    """

    def __init__(self, channels: int, kernel: int = 3, directional: bool = True) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"video-prediction kernel must be odd and >= 1, got {kernel}")
        c = p = channels
        k = kernel
        self.channels = c
        self.kernel = k
        self.directional = directional
        self.n_cells = 5 if directional else 1
        self.sets = ("h", "v", "c") if directional else ("c",)
        self.wx = nn.ParameterDict({s: nn.Parameter(torch.empty(3 * p, c, k, k)) for s in self.sets})
        self.wh = nn.ParameterDict({s: nn.Parameter(torch.empty(3 * p, p, k, k)) for s in self.sets})
        self.bx = nn.ParameterDict({s: nn.Parameter(torch.zeros(3 * p)) for s in self.sets})
        self.bh = nn.ParameterDict({s: nn.Parameter(torch.zeros(3 * p)) for s in self.sets})
        ctr = k // 2
        mask_h = torch.zeros(k, k)
        mask_h[:, : ctr + 1] = 1.0  # h+: columns <= centre
        mask_v = torch.zeros(k, k)
        mask_v[: ctr + 1, :] = 1.0  # v+: rows <= centre
        self.register_buffer("mask_h", mask_h, persistent=False)
        self.register_buffer("mask_v", mask_v, persistent=False)
        self.readout = nn.Conv2d(self.n_cells * p, c + 1, 1)

        with torch.no_grad():
            for s in self.sets:
                for w in (self.wx[s], self.wh[s]):
                    if s == "c":
                        nn.init.normal_(w, 0.0, 0.02)
                    else:  # orthogonal on [out, in*K*K] (orthogonal_ flattens so), then mask
                        nn.init.orthogonal_(w)
                        w.mul_(mask_h if s == "h" else mask_v)
            nn.init.normal_(self.readout.weight, 0.0, 0.02)
            nn.init.zeros_(self.readout.bias)

    def _weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Effective (wx [nc*3P, C, K, K], bx, wh [nc*3P, P, K, K], bh), cells in ``CELLS`` order."""
        if not self.directional:
            return self.wx["c"], self.bx["c"], self.wh["c"], self.bh["c"]

        def full(w: nn.ParameterDict) -> Tensor:
            h = w["h"] * self.mask_h
            v = w["v"] * self.mask_v
            return torch.cat((h, h.flip(-1), v, v.flip(-2), w["c"]), 0)

        def bias(b: nn.ParameterDict) -> Tensor:
            return torch.cat((b["h"], b["h"], b["v"], b["v"], b["c"]), 0)

        return full(self.wx), bias(self.bx), full(self.wh), bias(self.bh)

    def cell_weights(self, cell: str) -> tuple[Tensor, Tensor]:
        """Effective (masked, mirrored) input and hidden kernels of one cell, for inspection."""
        cells = CELLS if self.directional else ("c",)
        i = cells.index(cell)
        wx, _, wh, _ = self._weights()
        n = 3 * self.channels
        return wx[i * n : (i + 1) * n], wh[i * n : (i + 1) * n]

    def initial_state(
        self,
        batch: int,
        size: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Zero hidden states of all cells, [batch, n_cells*P, size, size]."""
        return torch.zeros(batch, self.n_cells * self.channels, size, size, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, T, C, N, N], state [B, n_cells*C, N, N] → (out like x, state after the last step)."""
        b, t, c, n, _ = x.shape
        nc = self.n_cells
        if state.shape != (b, nc * c, n, n):
            raise ValueError(f"video-prediction state must be {(b, nc * c, n, n)}, got {tuple(state.shape)}")
        ctr = self.kernel // 2
        frames = x.reshape(b * t, c, n, n)

        # Per group (h pair, v pair, centred): the pair's axis, the hidden kernel and bias, the
        # padding, and the input gates of all frames, [g*B, T, 3P, N, N] with g = 2 for a pair,
        # in the cells' own frames (_to_own). A pair's own frame is the one where its
        # + cell reads rows <= its own (v+ as is, h+ transposed), so its masked K×K kernel is
        # cropped to its K//2+1 non-zero rows: a third less arithmetic, and oneDNN's fast path
        # (cropping columns instead ran slower than the full kernel).
        groups = []
        if self.directional:
            for axis in ("h", "v"):
                both = torch.cat((_to_own(frames, axis, False), _to_own(frames, axis, True)))
                gx = F.conv2d(F.pad(both, (ctr, ctr, ctr, 0)), _own_kernel(self.wx[axis], axis, ctr),
                              self.bx[axis]).view(2 * b, t, 3 * c, n, n)
                groups.append((axis, _own_kernel(self.wh[axis], axis, ctr), self.bh[axis], (ctr, ctr, ctr, 0), gx))
        gx_c = F.conv2d(frames, self.wx["c"], self.bx["c"], padding=ctr).view(b, t, 3 * c, n, n)
        groups.append((None, self.wh["c"], self.bh["c"], (ctr,) * 4, gx_c))

        # States in each cell's own frame (cells in CELLS order: h+, h-, v+, v-, c).
        cells = state.view(b, nc, c, n, n).unbind(1)
        hs = [torch.cat((_to_own(cells[2 * j], axis, False), _to_own(cells[2 * j + 1], axis, True)))
              for j, (axis, *_) in enumerate(groups[:-1])]
        hs.append(cells[-1])
        outs = [[] for _ in groups]
        steps = [g[-1].unbind(1) for g in groups]   # unbind: one stack in backward, not T zero-fills
        for i in range(t):
            for j, (_, wh, bh, pad, _) in enumerate(groups):
                gh = F.conv2d(F.pad(hs[j], pad), wh, bh)
                hs[j] = _gru_update(steps[j][i], gh, hs[j])
                outs[j].append(hs[j])

        # Back to the image frame, cells in CELLS order, for the read-out and the carried state.
        parts, last = [], []
        for (axis, *_), seq, h in zip(groups, outs, hs):
            seq = torch.stack(seq, 1)                                  # [g*B, T, P, N, N]
            if axis is None:
                parts.append(seq)
                last.append(h)
            else:
                parts += [_from_own(seq[:b], axis, False), _from_own(seq[b:], axis, True)]
                last += [_from_own(h[:b], axis, False), _from_own(h[b:], axis, True)]
        return self._read_out(torch.cat(parts, 2), frames).view(b, t, c, n, n), torch.cat(last, 1)

    def _read_out(self, states: Tensor, frames: Tensor) -> Tensor:
        """states [B, T, n_cells*P, N, N] (cells in CELLS order), frames [B*T, C, N, N] →
        a ⊙ x + (1 - a) ⊙ x' per frame, [B*T, C, N, N]."""
        c, n = frames.shape[1], frames.shape[-1]
        ro = self.readout(states.reshape(-1, self.n_cells * c, n, n))
        xp, a = ro[:, :c], torch.sigmoid(ro[:, c:])
        return xp + a * (frames - xp)


def _to_own(z: Tensor, axis: str, minus: bool) -> Tensor:
    """Image frame → a directional cell's own frame, where it reads rows <= its own: the - cell
    mirrored along its axis, and the h cells transposed (so h+ reads columns <= its own)."""
    if minus:
        z = z.flip(-1 if axis == "h" else -2)
    return z.transpose(-1, -2) if axis == "h" else z


def _from_own(z: Tensor, axis: str, minus: bool) -> Tensor:
    """The inverse of _to_own."""
    if axis == "h":
        z = z.transpose(-1, -2)
    return z.flip(-1 if axis == "h" else -2) if minus else z


def _own_kernel(w: Tensor, axis: str, ctr: int) -> Tensor:
    """A + cell's masked K×K kernel in its own frame, cropped to its ctr+1 non-zero rows."""
    return w[..., :, : ctr + 1].transpose(-1, -2) if axis == "h" else w[..., : ctr + 1, :]


def _gru_update(x_gates: Tensor, h_gates: Tensor, h: Tensor) -> Tensor:
    """PyTorch's GRU cell from its input and hidden pre-activations, each [N, 3P, ...] as
    (r, z, n): (1 - z) ⊙ tanh(x_n + r ⊙ h_n) + z ⊙ h. Five ops (r and z through one sigmoid,
    addcmul, lerp) where the formula reads ten: the recurrence is small ops run T times."""
    p = h.shape[1]
    rz = torch.sigmoid(x_gates[:, : 2 * p] + h_gates[:, : 2 * p])
    cand = torch.tanh(torch.addcmul(x_gates[:, 2 * p:], rz[:, :p], h_gates[:, 2 * p:]))
    dt = torch.promote_types(cand.dtype, h.dtype)   # under bf16 autocast the state stays fp32
    return torch.lerp(cand.to(dt), h.to(dt), rz[:, p:].to(dt))
