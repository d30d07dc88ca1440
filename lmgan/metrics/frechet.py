"""Fréchet distance between Gaussian fits of two feature sets (FID, FVD).

d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½, the formula of pytorch-fid's
`calculate_frechet_distance` and StyleGAN-V's `compute_fvd`. They take scipy's `sqrtm` of the
non-symmetric Σ₁Σ₂, which can return complex values or NaN when a covariance is singular; here
both roots are of symmetric PSD matrices (eigh / eigvalsh, negative rounding clipped at 0), so the
value is real and finite, and equal to the sqrtm form where that one is well defined:
tr (Σ₁Σ₂)^½ = tr (Σ₁^½ Σ₂ Σ₁^½)^½ since both matrices have the same eigenvalues.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from lmgan.errors import LmganError


def gaussian(features) -> tuple[np.ndarray, np.ndarray]:
    """float64 mean [D] and covariance [D, D] (unbiased, np.cov rowvar=False) of features [N, D]."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise LmganError(f"features of shape {list(x.shape)}: expected [N samples, D dims]")
    n, d = x.shape
    if n < 2:
        raise LmganError(f"{n} feature vector(s): a covariance needs at least 2 samples")
    if not np.isfinite(x).all():
        raise LmganError("features contain NaN or inf: the detector's input was not finite")
    if n <= d:
        warnings.warn(f"{n} samples <= {d} dims: covariance is singular, the distance is biased "
                      f"(use more clips or frames)", RuntimeWarning, stacklevel=2)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise LmganError(f"Gaussian statistics do not match: mean {list(mu1.shape)} / {list(mu2.shape)}, "
                         f"covariance {list(s1.shape)} / {list(s2.shape)}")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    cross = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return max(float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * cross), 0.0)
