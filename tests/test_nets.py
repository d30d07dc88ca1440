"""Networks: shapes, carried states, dilation, directional ConvGRU masks, routing switches, gradients."""

from __future__ import annotations

import itertools

import pytest
import torch

from lmgan.nets.critics import ImageCritic, VideoCritic, time_factors
from lmgan.nets.generator import Generator
from lmgan.nets.motion import MotionEncoder, dilated_gru
from lmgan.nets.prediction import CELLS, VideoPrediction

F_, E, B, T, S = 8, 2, 2, 6, 16


M = F_ + E
SMALL = dict(channel_base=64, max_channels=16)   # 4 channels at 16²


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)




def _motion(mfs: bool = True, t: int = T) -> tuple[MotionEncoder, torch.Tensor, torch.Tensor]:
    r = MotionEncoder(F_, E, mfs=mfs)
    return r, torch.randn(B, t, F_), torch.randn(B, t, r.noise_dim_in())


# ---------------------------------------------------------------- R


@pytest.mark.parametrize("mfs", [True, False])
def test_motion_shapes_and_state(mfs):
    r, f, e = _motion(mfs)
    assert r.dim == M and r.noise_dim_in() == (E if mfs else M)
    st = r.initial_state(B, "cpu")
    assert [tuple(s.shape) for s in st] == [(1, B, M), (2, B, M), (4, B, M)]
    m, st2 = r(f, e, st)
    assert m.shape == (B, T, M) and torch.isfinite(m).all()
    assert [s.shape for s in st2] == [s.shape for s in st]
    m2, _ = r(f, e, [s.detach() for s in st2])
    assert not torch.allclose(m, m2)  # the carried state is read


@pytest.mark.parametrize("split", [(6, 6), (5, 7), (1, 2, 9)])
def test_motion_windows_chain(split):
    r, f, e = _motion(t=12)
    with torch.no_grad():
        whole, st_whole = r(f, e, r.initial_state(B, "cpu"))
        st, parts, i = r.initial_state(B, "cpu"), [], 0
        for n in split:  # includes T < d windows (1 and 2 steps against d = 4)
            out, st = r(f[:, i : i + n], e[:, i : i + n], st)
            parts.append(out)
            i += n
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-5, rtol=0)
    for a, b in zip(st, st_whole):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_dilated_gru_dependencies():
    gru = torch.nn.GRU(M, M, batch_first=True)
    x = torch.randn(1, 9, M, requires_grad=True)
    h, _ = dilated_gru(gru, x, torch.zeros(2, 1, M))
    (g,) = torch.autograd.grad(h[0, 7].sum(), x)
    dep = g[0].abs().sum(-1)
    assert (dep[[7, 5, 3, 1]] > 0).all()  # same phase
    assert (dep[[0, 2, 4, 6, 8]] == 0).all()  # t-1, t-3, ... and the future


def test_dilated_gru_matches_stepwise_reference():
    gru = torch.nn.GRU(M, M, batch_first=True)
    cell = torch.nn.GRUCell(M, M)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in gru.state_dict().items()})
    d, x, s0 = 3, torch.randn(B, 8, M), torch.randn(3, B, M)
    with torch.no_grad():
        h, st = dilated_gru(gru, x, s0)
        hist = list(s0)  # hist[k] = output of step k - d
        for t in range(8):
            hist.append(cell(x[:, t], hist[t]))
    torch.testing.assert_close(h, torch.stack(hist[d:], 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(st, torch.stack(hist[-d:]), atol=1e-5, rtol=0)


def test_motion_mfs_routing():
    for mfs in (True, False):
        r, f, e = _motion(mfs)
        st = r.initial_state(B, "cpu")
        a, _ = r(f, e, st)
        b, _ = r(f + 1.0, e, st)
        assert (not torch.allclose(a, b)) == mfs


# ---------------------------------------------------------------- VP


@pytest.mark.parametrize("directional,k", list(itertools.product([True, False], [1, 3, 5])))
def test_vp_shapes_and_chain(directional, k):
    vp = VideoPrediction(4, k, directional)
    x = torch.randn(B, T, 4, 8, 8)
    st = vp.initial_state(B, 8, "cpu")
    assert st.shape == (B, (5 if directional else 1) * 4, 8, 8)
    with torch.no_grad():
        out, st1 = vp(x, st)
        a, sa = vp(x[:, :2], st)
        b, sb = vp(x[:, 2:], sa)
    assert out.shape == x.shape and st1.shape == st.shape
    torch.testing.assert_close(torch.cat((a, b), 1), out, atol=1e-6, rtol=0)
    torch.testing.assert_close(sb, st1, atol=1e-6, rtol=0)


def test_convgru_matches_torch_gru_per_pixel():
    # K = 1: the centred ConvGRU is an nn.GRU at every pixel (same gate formulation and order).
    c, n = 3, 4
    vp = VideoPrediction(c, 1, directional=False)
    gru = torch.nn.GRU(c, c, batch_first=True)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(vp.wx["c"][:, :, 0, 0])
        gru.weight_hh_l0.copy_(vp.wh["c"][:, :, 0, 0])
        gru.bias_ih_l0.normal_()
        gru.bias_hh_l0.normal_()
        vp.bx["c"].copy_(gru.bias_ih_l0)
        vp.bh["c"].copy_(gru.bias_hh_l0)
        x = torch.randn(B, T, c, n, n)
        _, h = vp(x, vp.initial_state(B, n, "cpu"))
        seq = x.permute(0, 3, 4, 1, 2).reshape(B * n * n, T, c)
        _, ref = gru(seq)
    torch.testing.assert_close(h, ref[0].view(B, n, n, c).permute(0, 3, 1, 2), atol=1e-5, rtol=0)


def test_vp_parameter_sharing_and_masks():
    k, c = 5, 3
    vp = VideoPrediction(c, k, True)
    assert set(vp.wx.keys()) == {"h", "v", "c"}
    n_params = sum(p.numel() for p in vp.parameters())
    per_set = 3 * c * c * k * k * 2 + 3 * c * 2
    assert n_params == 3 * per_set + (5 * c) * (c + 1) + (c + 1)
    w = {cell: vp.cell_weights(cell) for cell in CELLS}
    for i in (0, 1):  # input and hidden kernels
        torch.testing.assert_close(w["h-"][i], w["h+"][i].flip(-1), atol=0, rtol=0)
        torch.testing.assert_close(w["v-"][i], w["v+"][i].flip(-2), atol=0, rtol=0)
        assert (w["h+"][i][..., k // 2 + 1 :] == 0).all() and (w["h+"][i][..., : k // 2 + 1] != 0).any()
        assert (w["h-"][i][..., : k // 2] == 0).all()
        assert (w["v+"][i][..., k // 2 + 1 :, :] == 0).all() and (w["v+"][i][..., : k // 2 + 1, :] != 0).any()
        assert (w["v-"][i][..., : k // 2, :] == 0).all()
        assert (w["c"][i] != 0).all()


@pytest.mark.parametrize("k", [3, 5])
def test_vp_directional_gradients(k):
    c, n, i, j = 3, 9, 4, 4
    vp = VideoPrediction(c, k, True)
    x = torch.randn(1, 3, c, n, n, requires_grad=True)
    _, h = vp(x, vp.initial_state(1, n, "cpu"))
    rows = cols = torch.arange(n)
    for idx, cell in enumerate(CELLS[:4]):
        (g,) = torch.autograd.grad(h[0, idx * c : (idx + 1) * c, i, j].sum(), x, retain_graph=True)
        g = g.abs().sum((0, 1, 2))  # [n, n] over all steps and channels
        axis, side = cell[0], cell[1]
        coord = (cols if axis == "h" else rows)
        excluded = coord > (j if axis == "h" else i) if side == "+" else coord < (j if axis == "h" else i)
        strict = coord < (j if axis == "h" else i) if side == "+" else coord > (j if axis == "h" else i)
        gg = g if axis == "h" else g.T  # index the restricted axis last
        assert (gg[:, excluded] == 0).all(), cell
        assert (gg[:, strict] > 0).any(), cell  # information does arrive from the allowed side
    (g,) = torch.autograd.grad(h[0, 4 * c :, i, j].sum(), x)
    g = g.abs().sum((0, 1, 2))
    assert g[i, j + 1] > 0 and g[i, j - 1] > 0 and g[i + 1, j] > 0 and g[i - 1, j] > 0


def test_vp_mirror_equivariance():
    c = 3
    vp = VideoPrediction(c, 3, True)
    x = torch.randn(1, 3, c, 7, 7)
    st = vp.initial_state(1, 7, "cpu")
    with torch.no_grad():
        _, h = vp(x, st)
        _, hm = vp(x.flip(-1), st)
        _, hv = vp(x.flip(-2), st)
    cell = lambda s, name: s[:, CELLS.index(name) * c : (CELLS.index(name) + 1) * c]  # noqa: E731
    torch.testing.assert_close(cell(hm, "h-"), cell(h, "h+").flip(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(cell(hv, "v-"), cell(h, "v+").flip(-2), atol=1e-6, rtol=0)


def test_vp_rejects_even_kernel():
    with pytest.raises(ValueError):
        VideoPrediction(4, 2)


# ---------------------------------------------------------------- G


@pytest.mark.parametrize(
    "sac,acin,vp,k",
    [(s, a, v, k) for s, a, v in itertools.product([True, False], [True, False], ["none", "convgru", "dirconvgru"])
     for k in ([1, 3, 5] if v != "none" else [3])],
)
def test_generator_shapes(sac, acin, vp, k):
    g = Generator(S, F_, M, sac=sac, acin=acin, vp=vp, vp_kernel=k, **SMALL)
    assert g.z_dim == (F_ + M if sac else M)
    st = g.initial_state(B, "cpu")
    if vp == "none":
        assert st is None
    else:
        assert st.shape == (B, (5 if vp == "dirconvgru" else 1) * 4, S, S)
    f, m = torch.randn(B, T, F_), torch.randn(B, T, M)
    with torch.no_grad():
        x, st1 = g(f, m, st)
        x2, st2 = g(f, m, st1)  # the returned state feeds the next window
    for y in (x, x2):
        assert y.shape == (B, T, 3, S, S) and torch.isfinite(y).all()
        assert y.min() >= -1 and y.max() <= 1
    if vp != "none":
        assert st1.shape == st.shape and st2.shape == st.shape


def test_generator_channels():
    """ch(r) = min(512, 4096 / r) at every size, the prediction layer at G's outermost width."""
    g = Generator(128, 64, 66)
    assert g.c4 == 512 and g.to_rgb.in_channels == 32 and len(g.blocks) == 5
    assert [b.conv1.out_channels for b in g.blocks] == [512, 256, 128, 64, 32]
    assert g.vp.channels == 32
    assert Generator(64, 64, 66).to_rgb.in_channels == 64
    assert Generator(256, 64, 66, vp="none").to_rgb.in_channels == 16
    assert len(Generator(256, 64, 66, vp="none").blocks) == 6


# The authors' full model (their modules.py: GenNet with sound_route rnngen, 3 motion layers,
# cond_gen, vid_pred dir, residual G; skip critics), counted by instantiating their code.
AUTHORS_PARAMS = {128: {"R": 79_596, "G": 8_347_567, "D_I": 9_432_065, "D_V": 28_269_569},
                  256: {"R": 79_596, "G": 8_274_657, "D_I": 9_446_145, "D_V": 28_311_297}}


@pytest.mark.parametrize("size", [128, 256])
def test_parameter_counts_match_the_authors(size):
    from lmgan.config import Config
    from lmgan.nets.model import ListenAndMove, build_critics

    cfg = Config(image_size=size)
    model = ListenAndMove(cfg)
    d_i, d_v = build_critics(cfg)
    count = {"R": model.motion, "G": model.generator, "D_I": d_i, "D_V": d_v}
    for name, net in count.items():
        ours = sum(p.numel() for p in net.parameters())
        assert abs(ours / AUTHORS_PARAMS[size][name] - 1) < 0.02, (name, ours, AUTHORS_PARAMS[size][name])
    for name in ("R", "D_I", "D_V"):   # same layers, so the same count exactly
        assert sum(p.numel() for p in count[name].parameters()) == AUTHORS_PARAMS[size][name], name


def _feat_grad(sac, acin):
    g = Generator(S, F_, M, sac=sac, acin=acin, vp="dirconvgru", **SMALL)
    f = torch.randn(B, T, F_, requires_grad=True)
    m = torch.randn(B, T, M)
    x, _ = g(f, m, g.initial_state(B, "cpu"))
    (grad,) = torch.autograd.grad(x.square().sum(), f, allow_unused=True)
    return g, f.detach(), m, grad


@pytest.mark.parametrize("sac,acin", [(True, True), (True, False), (False, True), (False, False)])
def test_generator_feature_routing(sac, acin):
    g, f, m, grad = _feat_grad(sac, acin)
    with torch.no_grad():
        st = g.initial_state(B, "cpu")
        a, _ = g(f, m, st)
        b, _ = g(f + 1.0, m, st)
    reads_feats = sac or acin
    assert (not torch.allclose(a, b)) == reads_feats
    if reads_feats:
        assert grad is not None and grad.abs().sum() > 0
    else:
        assert grad is None or (grad == 0).all()


def test_generator_acin_only_through_norms():
    g = Generator(S, F_, M, sac=False, acin=True, vp="none", **SMALL)
    assert g.fmt.in_channels == M
    with torch.no_grad():
        for name, p in g.named_parameters():
            if "affine" in name:
                p.zero_()  # the norms become unconditional: feats must no longer matter
        f, m = torch.randn(B, T, F_), torch.randn(B, T, M)
        torch.testing.assert_close(g(f, m, None)[0], g(f + 1.0, m, None)[0], atol=0, rtol=0)


def _acin_at_init(feat_dim: int = 64):
    """The acIN of a freshly built generator's 4² → 8² block (the paper's widths: 512 channels),
    initialised as G is (N(0, 0.02) weights, zero biases)."""
    g = Generator(8, feat_dim, feat_dim + 2, acin=True, vp="none")
    return g.blocks[0].acin


def test_acin_starts_as_the_plain_instance_norm():
    """acIN (DESIGN §3: "scale and shift come from a linear map of f_t, modulation as in
    BigGAN/StyleGAN") is IN(x)·(1 + γ(f)) + β(f): BigGAN's conditional gain is 1 + a linear map
    of the class code, StyleGAN's style scale starts at 1 (bias init 1). At initialisation the
    linear map has zero bias, so the average sound (normalised features 0) gives exactly the
    per-frame, per-channel instance norm; random normalised sounds give scales centred on 1 and
    shifts centred on 0, spread as the N(0, 0.02) init makes them (0.02·‖f‖ = 0.16 for 64 bins)."""
    torch.manual_seed(0)
    acin = _acin_at_init()
    x = torch.randn(6, acin.channels, 4, 4) * 3 + torch.randn(6, acin.channels, 1, 1) * 5   # not normalised
    mean = x.mean((2, 3), keepdim=True)
    plain = (x - mean) / (x.var((2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    with torch.no_grad():
        torch.testing.assert_close(acin(x, acin.modulation(torch.zeros(6, 64))), plain, atol=1e-5, rtol=0)
        f = torch.randn(500, 64)                        # normalised features: unit variance per bin
        scale, shift = acin.modulation(f)
    scale, shift = scale.flatten(1), shift.flatten(1)
    assert abs(float(scale.mean()) - 1) < 0.02 and abs(float(shift.mean())) < 0.02
    assert 0.1 < float(scale.std()) < 0.25 and 0.1 < float(shift.std()) < 0.25


def test_acin_scales_and_shifts_each_frames_instance_norm_by_its_own_sound():
    """Per frame and channel, the output's spatial mean is β(f_t) and its spatial std |1 + γ(f_t)|:
    the instance norm is taken over each frame's own pixels (no statistics shared between the
    frames of a window), then modulated by that frame's sound alone."""
    torch.manual_seed(1)
    acin = _acin_at_init()
    x = torch.randn(4, acin.channels, 8, 8) * 2 + 7
    f = torch.randn(4, 64)
    with torch.no_grad():
        scale, shift = acin.modulation(f)
        y = acin(x, (scale, shift))
        torch.testing.assert_close(y.mean((2, 3)), shift.flatten(1), atol=1e-4, rtol=0)
        torch.testing.assert_close(y.std((2, 3), unbiased=False), scale.flatten(1).abs(), atol=1e-4, rtol=1e-4)
        other = f.clone()
        other[1:] = torch.randn(3, 64)                  # the other frames hear something else
        y2 = acin(x, acin.modulation(other))
        torch.testing.assert_close(y2[0], y[0], atol=1e-6, rtol=0)
        y3 = acin(torch.cat((x[:1], x[1:] * 10 + 3)), (scale, shift))   # and look different
        torch.testing.assert_close(y3[0], y[0], atol=1e-6, rtol=0)


def test_noise_injection_adds_nothing_at_init_and_one_map_per_frame_after():
    """StyleGAN's noise injection, as the authors use it (NoiseInjection: weight zeros, noise
    [B, 1, H, W]): x + s_c · n with per-channel scales s starting at 0, so a fresh G is a
    deterministic function of its inputs; once the scales move, one N(0, 1) map per frame is
    shared by all channels, and every frame gets its own."""
    from lmgan.nets.generator import NoiseInjection
    torch.manual_seed(2)
    g = Generator(S, F_, M, vp="none", **SMALL)
    f, m = torch.randn(B, T, F_), torch.randn(B, T, M)
    with torch.no_grad():
        torch.manual_seed(3)
        a, _ = g(f, m, None)
        torch.manual_seed(4)
        b, _ = g(f, m, None)
    torch.testing.assert_close(a, b, atol=0, rtol=0)

    noise = NoiseInjection(5)
    x = torch.randn(64, 5, 16, 16)
    torch.testing.assert_close(noise(x), x, atol=0, rtol=0)
    with torch.no_grad():
        noise.scale.copy_(torch.tensor([0.5, 1.0, 2.0, -1.0, 3.0]).view(1, 5, 1, 1))
        n = (noise(x) - x) / noise.scale                    # the map each channel got
    torch.testing.assert_close(n, n[:, :1].expand_as(n), atol=1e-5, rtol=1e-5)   # shared by channels
    maps = n[:, 0].flatten(1)
    assert abs(float(maps.mean())) < 0.03 and abs(float(maps.std()) - 1) < 0.03   # N(0, 1)
    corr = torch.corrcoef(maps)                          # frames' maps are independent draws
    assert float((corr - torch.eye(64)).abs().max()) < 0.35


# ---------------------------------------------------------------- critics


@pytest.mark.parametrize("norm", ["batch", "instance", "layer", "none"])
def test_critic_shapes(norm):
    di = ImageCritic(S, norm=norm, **SMALL)
    assert di(torch.randn(3, 3, S, S)).shape == (3, 16)            # one score per 4×4 patch
    dv = VideoCritic(S, T, norm=norm, **SMALL)
    assert dv(torch.randn(3, T, 3, S, S)).shape == (3, 16)         # time 6 → 3 → 1


def test_critic_layout_is_the_authors():
    """Pool first, then both convs at the lower resolution, ch(r) → ch(r/2) → ch(r/2); one 1×1
    from-RGB per block input; a 1×1 head to one score per patch."""
    d = ImageCritic(128)
    assert len(d.blocks) == 5 and len(d.from_rgb) == 5
    assert [(b[0].in_channels, b[0].out_channels, b[3].out_channels) for b in d.blocks] == \
        [(32, 64, 64), (64, 128, 128), (128, 256, 256), (256, 512, 512), (512, 512, 512)]
    assert [c.out_channels for c in d.from_rgb] == [32, 64, 128, 256, 512]
    assert d.head.kernel_size == (1, 1) and d.head.out_channels == 1
    seen = []
    hooks = [b[0].register_forward_hook(lambda m, i, o: seen.append(i[0].shape[-1])) for b in d.blocks]
    d(torch.randn(1, 3, 128, 128))
    assert seen == [64, 32, 16, 8, 4]        # each block's first conv runs after the pooling
    for h in hooks:
        h.remove()


def test_video_critic_time_schedule():
    assert time_factors(6, 2) == [2, 2]  # 6 → 3 → 1 = ⌊log2 6⌋ halvings
    assert time_factors(2, 3) == [2, 1, 1]  # time stops at 1
    assert time_factors(32, 2) == [2, 2]  # blocks run out first: 8 frames reach the head
    assert time_factors(32, 5) == [2] * 5
    for s, t, patches in [(32, 2, 16), (16, 32, 8 * 16), (32, 1, 16)]:
        assert VideoCritic(s, t, **SMALL)(torch.randn(2, t, 3, s, s)).shape == (2, patches)
    with pytest.raises(ValueError):
        VideoCritic(S, T, **SMALL)(torch.randn(2, T + 1, 3, S, S))


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_critics_support_gradient_penalty(norm):
    for d, x in ((ImageCritic(S, norm=norm, **SMALL), torch.randn(2, 3, S, S)),
                 (VideoCritic(S, T, norm=norm, **SMALL), torch.randn(2, T, 3, S, S))):
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
        ((g.flatten(1).norm(dim=1) - 1) ** 2).mean().backward()
        for name, p in d.named_parameters():
            if name != "head.bias":  # a constant offset does not change the input gradient
                assert p.grad is not None and torch.isfinite(p.grad).all(), name


# ---------------------------------------------------------------- everything together


def test_gradient_flow_full_model():
    r = MotionEncoder(F_, E)
    g = Generator(S, F_, M, vp="dirconvgru", **SMALL)
    di, dv = ImageCritic(S, **SMALL), VideoCritic(S, T, **SMALL)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("scale"):  # zero-initialised noise scales: perturb
                p.fill_(0.1)
    f = torch.randn(B, T, F_)
    m, _ = r(f, torch.randn(B, T, E), r.initial_state(B, "cpu"))
    x, _ = g(f, m, g.initial_state(B, "cpu"))
    (di(x[:, 2]).sum() + dv(x).sum()).backward()
    for net in (r, g, di, dv):
        for name, p in net.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


def test_cpu_conv3d_path_equals_reference_conv3d():
    """critics.Conv3d's CPU route (time taps stacked into one conv2d) is nn.Conv3d, gradients too."""
    from lmgan.nets.critics import Conv3d

    torch.manual_seed(0)
    k = 3
    fast = Conv3d(5, 7, k, padding=k // 2)
    x = torch.randn(2, 5, 6, 8, 8, requires_grad=True)
    y = fast(x)
    ref = torch.nn.functional.conv3d(x, fast.weight, fast.bias, padding=k // 2)
    assert torch.allclose(y, ref, atol=1e-5)
    g1 = torch.autograd.grad(y.square().sum(), [x, fast.weight])
    g2 = torch.autograd.grad(ref.square().sum(), [x, fast.weight])
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(g1, g2))


def _expected_support(cell: str, k: int) -> torch.Tensor:
    """Written from the spec, not from the layer: where a directional cell's K×K kernel may be
    non-zero. h+ reads columns <= its own (the centre line included), h- columns >= its own,
    v+ rows <= its own, v- rows >= its own; the centred cell reads everything."""
    r = torch.arange(k)
    rows, cols = r[:, None].expand(k, k), r[None, :].expand(k, k)
    c = k // 2
    return {"h+": cols <= c, "h-": cols >= c, "v+": rows <= c, "v-": rows >= c,
            "c": torch.ones(k, k, dtype=torch.bool)}[cell]


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_vp_kernels_have_exactly_the_directional_support(k):
    """Every effective kernel is non-zero exactly on its cell's half-plane, centre line included
    (orthogonal init leaves no allowed entry at zero), in the input and the hidden kernels."""
    vp = VideoPrediction(3, k, True)
    for cell in CELLS:
        want = _expected_support(cell, k)
        for kind, w in zip(("input", "hidden"), vp.cell_weights(cell)):
            support = (w != 0).any(0).any(0)               # [K, K] over out and in channels
            assert torch.equal(support, want), (cell, kind, support.int().tolist())
            assert ((w != 0) == want).all(), (cell, kind)  # every channel pair, not just some


@pytest.mark.parametrize("k", [3, 5])
def test_vp_directional_cells_read_their_own_line(k):
    """One step from a zero state: a directional cell's state at (i, j) depends on the input on
    its own line (the centre of its kernel: column j for h±, row i for v±) and beyond it on its
    side, and nowhere on the other side."""
    c, n, i, j = 3, 9, 4, 4
    vp = VideoPrediction(c, k, True)
    x = torch.randn(1, 1, c, n, n, requires_grad=True)
    _, h = vp(x, vp.initial_state(1, n, "cpu"))
    r = k // 2
    for idx, cell in enumerate(CELLS[:4]):
        (g,) = torch.autograd.grad(h[0, idx * c:(idx + 1) * c, i, j].sum(), x, retain_graph=True)
        g = g[0, 0].abs().sum(0)                           # [n, n]
        want = torch.zeros(n, n, dtype=torch.bool)
        want[i - r:i + r + 1, j - r:j + r + 1] = _expected_support(cell, k)
        assert torch.equal(g > 0, want), (cell, (g > 0).int().tolist())
