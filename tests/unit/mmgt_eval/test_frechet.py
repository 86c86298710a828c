"""The Fréchet core: closed forms (metrics-reference.md §1, §9), pytorch-fid agreement, rank deficiency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from mmgt_eval.frechet import (
    frechet_distance,
    frechet_distance_from_features,
    gaussian_stats,
    stats_from_sums,
    trace_sqrt_product,
)


def _random_features(rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """Correlated, non-isotropic features (n, d)."""
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return rng.standard_normal((n, d)) @ mix * rng.uniform(0.2, 3.0, d) + shift


def test_equal_covariances_give_mean_term_2048() -> None:
    """pytorch-fid's own test: mu 0 vs 1, Sigma = I, d = 2048 -> 2048 (diagonal fast path)."""
    d = 2048
    assert frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)) == pytest.approx(2048.0, abs=1e-8)


def test_equal_covariances_general_path() -> None:
    """Sigma1 = Sigma2 non-diagonal (rotated): FD = ||mu1 - mu2||^2 through the eigh / SVD path."""
    rng = np.random.default_rng(7)
    d = 256
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    sigma = (q * rng.uniform(0.01, 4.0, d)) @ q.T
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    expected = float(np.sum((mu1 - mu2) ** 2))
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(expected, rel=1e-10)


@pytest.mark.slow
def test_equal_covariances_general_path_2048() -> None:
    rng = np.random.default_rng(8)
    d = 2048
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    sigma = (q * rng.uniform(0.01, 4.0, d)) @ q.T
    assert frechet_distance(np.zeros(d), sigma, np.ones(d), sigma) == pytest.approx(2048.0, rel=1e-9)


def test_isotropic_scaled_covariance() -> None:
    fd = frechet_distance(np.zeros(4), np.eye(4), np.zeros(4), 4 * np.eye(4))
    assert fd == pytest.approx(4.0, abs=1e-12)


def test_diagonal_closed_form() -> None:
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 16.0])
    fd = frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b))
    assert fd == pytest.approx(6.0, abs=1e-12)
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 5, 50), rng.uniform(0, 5, 50)
    mu1, mu2 = rng.standard_normal(50), rng.standard_normal(50)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(a + b - 2 * np.sqrt(a * b))
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_one_dimensional_closed_form() -> None:
    fd = frechet_distance(np.array([0.5]), np.array([[4.0]]), np.array([-1.0]), np.array([[0.25]]))
    assert fd == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, abs=1e-12)


def test_set_against_itself_is_zero_and_symmetric_and_scales() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16))
    y = _random_features(rng, 400, 16, shift=0.3)
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-10)
    fxy, fyx = frechet_distance_from_features(x, y), frechet_distance_from_features(y, x)
    assert fxy > 0.1
    assert fxy == pytest.approx(fyx, rel=1e-12)
    assert frechet_distance_from_features(3 * x, 3 * y) == pytest.approx(9 * fxy, rel=1e-10)
    # invariant to adding the same vector to both sets
    c = rng.standard_normal(16) * 10
    assert frechet_distance_from_features(x + c, y + c) == pytest.approx(fxy, rel=1e-10)


@pytest.mark.parametrize(("d", "n"), [(3, 10), (64, 80), (64, 1000), (400, 600)])
def test_matches_pytorch_fid_on_random_stats(d: int, n: int) -> None:
    rng = np.random.default_rng(d + n)
    mu1, s1 = gaussian_stats(_random_features(rng, n, d))
    mu2, s2 = gaussian_stats(_random_features(rng, n + 7, d, shift=0.5))
    ref = calculate_frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


def test_rank_deficient_covariances_follow_pytorch_fid() -> None:
    """N < d: singular covariances take pytorch-fid's sqrtm path, so values equal the reference's.

    The exact value through the (small) sample space: with centred samples X1 (n1, d), X2 (n2, d) and
    S_i = X_iᵀX_i / (n_i − 1), the non-zero eigenvalues of S1 S2 are the squared singular values of
    X1 X2ᵀ / sqrt((n1 − 1)(n2 − 1)), so Tr((S1 S2)^½) is its nuclear norm. pytorch-fid's ``sqrtm`` carries
    ~1e-7 of round-off on singular products (documented in mmgt_eval.frechet); we reproduce that.
    """
    rng = np.random.default_rng(3)
    d = 256
    for n1, n2 in [(20, 30), (2, 5), (100, 100)]:
        x1, x2 = _random_features(rng, n1, d), _random_features(rng, n2, d, shift=0.2)
        mu1, s1 = gaussian_stats(x1)
        mu2, s2 = gaussian_stats(x2)
        c1, c2 = x1 - mu1, x2 - mu2
        nuclear = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
        assert trace_sqrt_product(s1, s2) == pytest.approx(nuclear, rel=1e-5)  # 1.3e-6 at n1 = 2
        exact = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * nuclear
        fd = frechet_distance(mu1, s1, mu2, s2)
        assert fd == pytest.approx(calculate_frechet_distance(mu1, s1, mu2, s2), rel=1e-12, abs=1e-12)
        assert fd == pytest.approx(exact, rel=1e-6)
    # a zero covariance (every sample identical) and a zero-variance direction
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.ones(3), np.zeros((3, 3))) == pytest.approx(3.0)
    a, b = np.array([0.0, 4.0, 9.0]), np.array([4.0, 0.0, 16.0])
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(4 + 4 + 1)
    # a singular, non-diagonal pair: a rotated zero-variance direction
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    sa, sb = (q * a) @ q.T, (q * b) @ q.T
    assert frechet_distance(np.zeros(3), sa, np.zeros(3), sb) == pytest.approx(9.0, rel=1e-6)


def test_singular_case_equals_stylegan_v_formula() -> None:
    """StyleGAN-V's FVD: np.real(|mu_g - mu_r|^2 + trace(S_g + S_r - 2 sqrtm(S_g S_r))), ÷N covariances."""
    from scipy import linalg

    rng = np.random.default_rng(11)
    d = 64
    xg, xr = _random_features(rng, 40, d), _random_features(rng, 30, d, shift=0.4)
    mu_g, s_g = gaussian_stats(xg, ddof=0)
    mu_r, s_r = gaussian_stats(xr, ddof=0)
    m = np.square(mu_g - mu_r).sum()
    reference = float(np.real(m + np.trace(s_g + s_r - linalg.sqrtm(np.dot(s_g, s_r)) * 2)))
    assert frechet_distance(mu_g, s_g, mu_r, s_r) == pytest.approx(reference, rel=1e-12)


def test_gaussian_stats_and_streaming_sums_match_numpy() -> None:
    rng = np.random.default_rng(5)
    x = _random_features(rng, 50, 8, shift=2.0)
    mu, sigma = gaussian_stats(x)
    assert np.allclose(mu, x.mean(0))
    assert np.allclose(sigma, np.cov(x, rowvar=False), rtol=1e-12, atol=1e-12)
    _, biased = gaussian_stats(x, ddof=0)
    assert np.allclose(biased, np.cov(x, rowvar=False, bias=True), rtol=1e-12, atol=1e-12)
    for ddof in (0, 1):
        mu_s, sigma_s = stats_from_sums(x.sum(0), x.T @ x, len(x), ddof=ddof)
        assert np.allclose(mu_s, mu)
        assert np.allclose(sigma_s, np.cov(x, rowvar=False, ddof=ddof), rtol=1e-9, atol=1e-12)
    # torch float64 tensors are accepted
    t_mu, t_sigma = gaussian_stats(torch.from_numpy(x))
    assert t_mu.dtype == np.float64 and np.allclose(t_sigma, sigma)


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="equal length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariances must be"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_stats(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        gaussian_stats(np.zeros(4))
