"""Fréchet distance between Gaussians fitted to feature sets: the shared core of FID, FVD and FGD.

    FD = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2))

Everything runs in float64 numpy. ``Tr((S1 S2)^(1/2))`` (:func:`trace_sqrt_product`) takes one of three
paths, chosen by the covariances (not by the caller):

* **diagonal** S1 and S2 (commuting): ``sum_i sqrt(a_i b_i)``, exact;
* **full rank** (both covariances have every eigenvalue above ``1e-10`` times their largest, i.e. more
  samples than dimensions): the symmetric form of TF-GAN's ``trace_sqrt_product``: with the symmetric square
  roots ``A = S1^(1/2)``, ``B = S2^(1/2)`` (``numpy.linalg.eigh``), ``S1 S2`` has the same spectrum as the PSD
  matrix ``(AB)(AB)^T``, so the trace is the nuclear norm of ``AB``. Real by construction; it agrees with
  pytorch-fid's ``calculate_frechet_distance`` to ~1e-10 relative (tests: ~1e-12);
* **singular** (either covariance rank-deficient: fewer samples than dimensions, or a constant feature):
  pytorch-fid's own computation path, so that small-N values equal the reference's: ``scipy.linalg.sqrtm(S1 @
  S2)`` (called without the ``disp`` argument that pytorch-fid and StyleGAN-V pass and SciPy 1.18 removes;
  the result is the same); if it has non-finite entries, retried with ``1e-6 * I`` added to both covariances;
  a complex result whose diagonal has an imaginary part above 1e-3 raises ``ValueError`` (pytorch-fid's
  rule; StyleGAN-V would keep the real part), otherwise its real part is kept. The nuclear-norm form would
  differ from pytorch-fid here by 3e-8 to 8e-8 relative in FD (measured for d = 64..2048, N = 2..500): the
  difference is the round-off of ``sqrtm`` on a singular product, which pytorch-fid and StyleGAN-V both
  carry. StyleGAN-V's FVD takes ``np.real`` of the same ``sqrtm`` trace, so it is covered too.

The value is returned as computed: for identical statistics it is ~1e-13 and may be slightly negative.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import linalg


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


def _psd_sqrt(w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix from its ``eigh`` decomposition (w, v).

    Eigenvalues below ``d * eps * max eigenvalue`` are round-off of exact zeros and are set to 0.
    """
    tol = max(float(w.max(initial=0.0)), 0.0) * w.shape[0] * np.finfo(np.float64).eps
    return (v * np.sqrt(np.where(w > tol, w, 0.0))) @ v.T


SINGULAR_RTOL = 1e-10
"""A covariance whose smallest eigenvalue is at most this times its largest is treated as singular."""
PYTORCH_FID_EPS = 1e-6
"""pytorch-fid's diagonal offset when ``sqrtm`` of the product is not finite."""


def _is_singular(eigenvalues: np.ndarray) -> bool:
    top = float(eigenvalues.max(initial=0.0))
    return top <= 0.0 or float(eigenvalues.min()) <= SINGULAR_RTOL * top


def trace_sqrt_product_pytorch_fid(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((Σ1 Σ2)^(1/2)) as pytorch-fid 0.3.0 ``calculate_frechet_distance`` computes it (the sqrtm path)."""
    with warnings.catch_warnings():  # sqrtm warns "Matrix is singular": expected on this path
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * PYTORCH_FID_EPS
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"Fréchet distance: sqrtm of the covariance product has an imaginary component {imag:.3g} "
                "on its diagonal (> 1e-3; pytorch-fid raises here too): too few samples for the dimension"
            )
        covmean = covmean.real
    return float(np.trace(covmean))


def trace_sqrt_product(sigma1: Any, sigma2: Any) -> float:
    """Tr((Σ1 Σ2)^(1/2)) for symmetric PSD Σ1, Σ2 (diagonal / full-rank / singular path: module docstring)."""
    s1 = _as_f64(sigma1, "sigma1")
    s2 = _as_f64(sigma2, "sigma2")
    if _is_diagonal(s1) and _is_diagonal(s2):  # commuting: sum_i sqrt(a_i b_i), no decomposition needed
        return float(np.sqrt(np.clip(np.diag(s1) * np.diag(s2), 0.0, None)).sum())
    w1, v1 = np.linalg.eigh((s1 + s1.T) / 2)
    w2, v2 = np.linalg.eigh((s2 + s2.T) / 2)
    if _is_singular(w1) or _is_singular(w2):
        return trace_sqrt_product_pytorch_fid(s1, s2)  # the covariances as given, as pytorch-fid takes them
    a = _psd_sqrt(w1, v1)
    b = _psd_sqrt(w2, v2)
    return float(np.linalg.svd(a @ b, compute_uv=False).sum())


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    Args:
        mu1: (d,) mean of the first distribution (array or tensor).
        sigma1: (d, d) symmetric PSD covariance of the first distribution.
        mu2: (d,) mean of the second distribution (array or tensor).
        sigma2: (d, d) symmetric PSD covariance of the second distribution.
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


def frechet_of_sides(
    stats: Callable[[bool], tuple[np.ndarray, np.ndarray]], counts: tuple[int, int], dims: int, warning: str
) -> float:
    """The Fréchet distance between a streaming metric's two sides; ``warning`` when a side is too small.

    Args:
        stats: ``stats(real)`` -> (mu (D,), sigma (D, D)) of one side.
        counts: samples of the (real, generated) sides.
        dims: feature dimensions D; a side with <= D samples has a singular covariance (a biased value).
        warning: the UserWarning's text in that case.
    """
    if min(counts) <= dims:
        warnings.warn(warning, stacklevel=3)
    return frechet_distance(*stats(True), *stats(False))


def frechet_distance_from_features(features1: Any, features2: Any, ddof: int = 1) -> float:
    """Fréchet distance between Gaussians fitted to two (N_i, d) feature sets."""
    mu1, s1 = gaussian_stats(features1, ddof)
    mu2, s2 = gaussian_stats(features2, ddof)
    return frechet_distance(mu1, s1, mu2, s2)
