"""SSIM and PSNR per frame agree with scikit-image's reference implementations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lmgan.metrics.frames import psnr_per_frame, ssim_per_frame






def smooth(n, s, g):
    """Natural-looking frames: low-frequency colour blobs over a gradient, in [-1, 1]."""
    x = F.interpolate(torch.randn(n, 3, max(s // 8, 2), max(s // 8, 2), generator=g), size=(s, s),
                      mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
    return (0.5 * x + 0.5 * torch.sin(6 * xx + 3 * yy)).clamp(-1, 1)


def pair(kind, s, g):
    if kind == "random":
        real = torch.rand(4, 3, s, s, generator=g) * 2 - 1
        return (real + 0.3 * torch.randn(real.shape, generator=g)).clamp(-1, 1), real
    real = smooth(4, s, g)
    if kind == "smooth":
        return (0.7 * real + 0.3 * smooth(4, s, g)), real
    if kind == "noisy":
        return (real + 0.1 * torch.randn(real.shape, generator=g)).clamp(-1, 1), real
    # "flat": nearly constant frames, where E[x²] − E[x]² cancels most
    flat = torch.full((4, 3, s, s), 0.2) + 0.01 * torch.randn(4, 3, s, s, generator=g)
    return flat + 0.02 * torch.randn(flat.shape, generator=g), flat


def to_numpy(x):
    return ((x.double() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("size", [32, 64, 128])
@pytest.mark.parametrize("kind", ["random", "smooth", "noisy", "flat"])
def test_ssim_and_psnr_match_skimage(size, kind):
    g = torch.Generator().manual_seed(size)
    fake, real = pair(kind, size, g)
    ours = ssim_per_frame(fake, real)
    assert ours.shape == (4,) and ours.dtype == torch.float32
    ref = [structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=-1)
           for a, b in zip(to_numpy(fake), to_numpy(real))]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-4)   # the issue asks 1e-3
    ref_psnr = [peak_signal_noise_ratio(b, a, data_range=1.0) for a, b in zip(to_numpy(fake), to_numpy(real))]
    np.testing.assert_allclose(psnr_per_frame(fake, real).numpy(), ref_psnr, rtol=0, atol=1e-3)


def test_identical_frames():
    x = torch.rand(3, 3, 48, 40) * 2 - 1
    assert torch.allclose(ssim_per_frame(x, x), torch.ones(3), atol=1e-6)
    assert torch.isinf(psnr_per_frame(x, x)).all()


def test_ssim_rejects_frames_smaller_than_its_window():
    with pytest.raises(ValueError, match="11"):
        ssim_per_frame(torch.zeros(1, 3, 10, 32), torch.zeros(1, 3, 10, 32))
