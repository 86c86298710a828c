"""Fréchet distance between Gaussians fitted to feature sets: the shared core of FID, FVD and FGD.

    FD = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))

Everything runs in float64 numpy. ``Tr((S1 S2)^(1/2))`` uses the symmetric form of TF-GAN's
``trace_sqrt_product`` (``trace_sqrt_product`` here): with the symmetric square roots ``A = S1^(1/2)`` and
``B = S2^(1/2)`` (from ``numpy.linalg.eigh``), ``S1 S2`` has the same non-zero spectrum as the PSD matrix
``A S2 A = (AB)(AB)^T``, so ``Tr((S1 S2)^(1/2))`` is the sum of the singular values of ``AB`` (its
nuclear norm). Everything is real by construction, and taking singular values of ``AB`` rather than square
roots of the eigenvalues of ``A S2 A`` keeps round-off of exact zeros (rank-deficient covariances, N <= d)
from being amplified by a square root; eigenvalues of S1, S2 below ``d * eps * max`` are treated as zeros.
This needs neither ``scipy.linalg.sqrtm`` (whose ``disp`` argument pytorch-fid and StyleGAN-V pass and SciPy
1.18 removes) nor pytorch-fid's ``eps * I`` retry or its "imaginary component" error; on full-rank covariances
it agrees with pytorch-fid's ``calculate_frechet_distance`` to ~1e-12 relative.

The value is returned as computed: for identical statistics it is ~1e-13 and may be slightly negative.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_f64(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


def gaussian_stats(features: Any, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a feature set.

    Args:
        features: (N, d) array or tensor (one row per sample).
        ddof: 1 for the unbiased covariance (÷(N−1); pytorch-fid, torchmetrics, TF-GAN), 0 for ÷N
            (StyleGAN-V's FVD).

    Returns:
        mu (d,) and sigma (d, d), float64.
    """
    x = _as_f64(features, "features")
    if x.ndim != 2:
        raise ValueError(f"features must be (N, d), got shape {x.shape}")
    if x.shape[0] < ddof + 1:
        raise ValueError(
            f"need at least {ddof + 1} samples for a covariance with ddof={ddof}, got {x.shape[0]}"
        )
    mu = x.mean(axis=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - ddof)
    return mu, sigma


def stats_from_sums(feature_sum: Any, outer_sum: Any, n: int, ddof: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance from streaming sums (Σx, Σxxᵀ, N), as the metrics accumulate them.

    Args:
        feature_sum: (d,) sum of the feature vectors.
        outer_sum: (d, d) sum of their outer products.
        n: number of samples.
        ddof: 1 for ÷(N−1), 0 for ÷N.
    """
    n = int(n)
    if n < ddof + 1:
        raise ValueError(f"need at least {ddof + 1} samples for a covariance with ddof={ddof}, got {n}")
    s = _as_f64(feature_sum, "feature sum")
    ss = _as_f64(outer_sum, "outer-product sum")
    mu = s / n
    sigma = (ss - n * np.outer(mu, mu)) / (n - ddof)
    return mu, (sigma + sigma.T) / 2


def _is_diagonal(m: np.ndarray) -> bool:
    return not np.any(m[~np.eye(m.shape[0], dtype=bool)])


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix.

    Eigenvalues below ``d * eps * max eigenvalue`` are round-off of exact zeros (rank-deficient covariances)
    and are set to 0; rooting them would turn ~1e-16 noise into ~1e-8 errors.
    """
    w, v = np.linalg.eigh(sigma)
    tol = max(float(w.max(initial=0.0)), 0.0) * sigma.shape[0] * np.finfo(np.float64).eps
    return (v * np.sqrt(np.where(w > tol, w, 0.0))) @ v.T


def trace_sqrt_product(sigma1: Any, sigma2: Any) -> float:
    """Tr((Σ1 Σ2)^(1/2)) for symmetric PSD Σ1, Σ2: the nuclear norm of sqrt(Σ1) sqrt(Σ2)."""
    s1 = _as_f64(sigma1, "sigma1")
    s2 = _as_f64(sigma2, "sigma2")
    if _is_diagonal(s1) and _is_diagonal(s2):  # commuting: sum_i sqrt(a_i b_i), no decomposition needed
        return float(np.sqrt(np.clip(np.diag(s1) * np.diag(s2), 0.0, None)).sum())
    a = _psd_sqrt((s1 + s1.T) / 2)
    b = _psd_sqrt((s2 + s2.T) / 2)
    return float(np.linalg.svd(a @ b, compute_uv=False).sum())


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Args:
        mu1, mu2: (d,) means (arrays or tensors).
        sigma1, sigma2: (d, d) symmetric PSD covariances.
    """
    m1 = np.atleast_1d(_as_f64(mu1, "mu1"))
    m2 = np.atleast_1d(_as_f64(mu2, "mu2"))
    s1 = np.atleast_2d(_as_f64(sigma1, "sigma1"))
    s2 = np.atleast_2d(_as_f64(sigma2, "sigma2"))
    if m1.ndim != 1 or m1.shape != m2.shape:
        raise ValueError(f"means must be vectors of equal length, got {m1.shape} and {m2.shape}")
    d = m1.shape[0]
    if s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}) to match the means, got {s1.shape} and {s2.shape}")
    diff = m1 - m2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt_product(s1, s2))


def frechet_distance_from_features(features1: Any, features2: Any, ddof: int = 1) -> float:
    """Fréchet distance between Gaussians fitted to two (N_i, d) feature sets."""
    mu1, s1 = gaussian_stats(features1, ddof)
    mu2, s2 = gaussian_stats(features2, ddof)
    return frechet_distance(mu1, s1, mu2, s2)
