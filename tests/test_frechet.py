"""Fréchet distance: against pytorch-fid's scipy.linalg.sqrtm formula, and where sqrtm breaks."""

import warnings

import numpy as np
import pytest
import torch
from scipy import linalg

from lmgan.errors import LmganError
from lmgan.metrics.frechet import frechet_distance, gaussian


def reference(mu1, sigma1, mu2, sigma2):
    """pytorch-fid's calculate_frechet_distance (without its eps retry): sqrtm of Σ1Σ2, real part."""
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    diff = mu1 - mu2
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def features(seed, n, d, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift + rng.normal(size=d)


@pytest.mark.parametrize("n,d", [(500, 64), (500, 16), (200, 16)])
def test_matches_the_scipy_reference(n, d):
    a, b = gaussian(features(0, n, d)), gaussian(features(1, n, d, shift=0.3))
    ours, ref = frechet_distance(*a, *b), reference(*a, *b)
    assert ref > 0
    assert abs(ours - ref) <= 1e-6 * ref


def test_closed_form_in_one_dimension():
    # N(0, 1) vs N(1, 4): 1² + 1 + 4 − 2·√4 = 2
    assert frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, abs=1e-12)


def test_identical_statistics_give_zero():
    mu, sigma = gaussian(features(2, 500, 64))
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_symmetric():
    a, b = gaussian(features(3, 300, 32)), gaussian(features(4, 300, 32, shift=1.0))
    assert frechet_distance(*a, *b) == pytest.approx(frechet_distance(*b, *a), rel=1e-10)


def test_fewer_samples_than_dims_warns_and_stays_finite():
    x, y = features(5, 20, 64), features(6, 20, 64, shift=0.5)
    with pytest.warns(RuntimeWarning, match="covariance is singular, the distance is biased"):
        a = gaussian(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        b = gaussian(y)
    d = frechet_distance(*a, *b)
    assert np.isfinite(d) and d > 0
    assert abs(frechet_distance(*a, *a)) < 1e-8   # rank-deficient but identical: still 0, not NaN


def test_float64_from_tensors_and_unbiased_covariance():
    x = torch.randn(100, 8, generator=torch.Generator().manual_seed(0))
    mu, sigma = gaussian(x)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (8, 8)
    np.testing.assert_allclose(sigma, np.cov(x.double().numpy(), rowvar=False), rtol=1e-12)


def test_bad_inputs_are_user_errors():
    with pytest.raises(LmganError, match="at least 2"):
        gaussian(np.zeros((1, 4)))
    with pytest.raises(LmganError, match=r"\[N samples, D dims\]"):
        gaussian(np.zeros(4))
    with pytest.raises(LmganError, match="NaN"):
        gaussian(np.full((3, 2), np.nan))
    with pytest.raises(LmganError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
