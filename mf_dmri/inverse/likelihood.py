"""Noise models: Gaussian (real, phase-corrected data) and Rician (magnitude data).

Negative log-likelihoods include every term that depends on the noise level sigma, so sigma
can be estimated with the other parameters.  The Rician density of a magnitude y given the
noise-free amplitude nu and the per-channel noise sigma is (Rice 1944; Gudbjartsson and
Patz 1995, Magn. Reson. Med. 34, 910)

    p(y) = y / sigma^2 exp(-(y^2 + nu^2) / (2 sigma^2)) I0(y nu / sigma^2),   y >= 0,

evaluated with log I0(x) = log(i0e(x)) + |x| to avoid overflow.

Fisher information of one Rician measurement about (nu, sigma): no closed form exists; it
is E[score score^T] over y, computed here by Gauss-Legendre quadrature of the density on
[max(0, nu - 12 sigma), nu + 12 sigma] (the tails beyond carry less than 1e-30 of the mass).
It tends to the Gaussian values (1/sigma^2 for nu, 2/sigma^2 for sigma) at high SNR
and I_nu,nu ~ nu^2 / sigma^4, I_sigma,sigma ~ 4 / sigma^2 (Rayleigh) as nu -> 0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mf_dmri._checks import DTYPE

LIKELIHOODS = ("gaussian", "rician")
_QUADRATURE_NODES = 256


def check_likelihood(name: str) -> str:
    if name not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {name!r}")
    return name


def check_data(data: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Validated float64 (M,) data; magnitude data must be non-negative for Rician noise."""
    values = torch.as_tensor(data, dtype=DTYPE)
    if values.ndim != 1 or values.numel() == 0:
        raise ValueError(f"data must be a non-empty 1-D array, got shape {tuple(values.shape)}")
    if not bool(torch.isfinite(values).all()):
        raise ValueError("data contain NaN or infinite values; remove those measurements")
    if likelihood == "rician" and bool((values < 0).any()):
        raise ValueError(
            "Rician likelihood needs magnitude data (>= 0) but the data have negative values; "
            "use likelihood='gaussian' for real-valued (phase-corrected) data"
        )
    return values


def log_bessel_i0(x: torch.Tensor) -> torch.Tensor:
    """log I0(x) without overflow (twice differentiable)."""
    return torch.log(torch.special.i0e(x)) + x.abs()


def gaussian_nll(data: torch.Tensor, predicted: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """sum_m (y - s)^2 / (2 sigma^2) + log(sigma) + log(2 pi)/2; sigma [data units]."""
    residual = data - predicted
    count = data.numel()
    return (residual**2).sum() / (2 * sigma**2) + count * (
        torch.log(sigma) + 0.5 * math.log(2 * math.pi)
    )


def rician_nll(data: torch.Tensor, predicted: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """-sum_m log p(y_m | nu_m, sigma) for the Rician density; ``predicted`` nu >= 0."""
    variance = sigma**2
    positive = data > 0
    log_y = torch.where(positive, torch.log(torch.where(positive, data, 1.0)), 0.0)
    log_density = (
        log_y
        - torch.log(variance)
        - (data**2 + predicted**2) / (2 * variance)
        + log_bessel_i0(data * predicted / variance)
    )
    return -log_density.sum()


def negative_log_likelihood(
    likelihood: str, data: torch.Tensor, predicted: torch.Tensor, sigma: torch.Tensor
) -> torch.Tensor:
    if likelihood == "gaussian":
        return gaussian_nll(data, predicted, sigma)
    return rician_nll(data, predicted, sigma)


def sample_noise(
    likelihood: str, clean: torch.Tensor, sigma: float, generator: torch.Generator
) -> torch.Tensor:
    """Noisy data around the noise-free signal ``clean`` (M,) with noise level ``sigma``."""
    real = torch.randn(clean.shape, dtype=DTYPE, generator=generator) * sigma
    if likelihood == "gaussian":
        return clean + real
    imaginary = torch.randn(clean.shape, dtype=DTYPE, generator=generator) * sigma
    return torch.sqrt((clean + real) ** 2 + imaginary**2)


def rician_information(amplitude: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Fisher information of one Rician measurement about (nu, sigma), (M, 2, 2).

    Args:
        amplitude: noise-free amplitudes nu (M,) [data units], >= 0.
        sigma: per-channel noise standard deviation [data units], positive.

    Entry [0, 0] is the information about nu, [1, 1] about sigma.  Differentiable with
    respect to ``amplitude`` and ``sigma`` (used by protocol design).
    """
    nu = torch.as_tensor(amplitude, dtype=DTYPE).abs()
    sigma = torch.as_tensor(sigma, dtype=DTYPE)
    if bool((sigma.detach() <= 0).any()):
        raise ValueError("sigma must be positive [data units]")
    nodes, weights = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
    nodes = torch.as_tensor(nodes, dtype=DTYPE)
    weights = torch.as_tensor(weights, dtype=DTYPE)
    lower = torch.clamp(nu.detach() - 12 * sigma.detach(), min=0.0)
    upper = nu.detach() + 12 * sigma.detach()
    half = (upper - lower)[:, None] / 2
    y = lower[:, None] + half * (nodes[None] + 1)  # (M, N) quadrature points
    w = weights[None] * half
    nu_col, var = nu[:, None], sigma**2
    z = y * nu_col / var
    ratio = torch.special.i1e(z) / torch.special.i0e(z)  # I1/I0
    score_nu = -nu_col / var + y / var * ratio
    score_sigma = -2 / sigma + (y**2 + nu_col**2) / sigma**3 - 2 * y * nu_col / sigma**3 * ratio
    density = torch.exp(
        torch.log(y)
        - torch.log(var)
        - (y - nu_col) ** 2 / (2 * var)
        + torch.log(torch.special.i0e(z))
    )
    mass = w * density
    info_nn = (mass * score_nu**2).sum(-1)
    info_ns = (mass * score_nu * score_sigma).sum(-1)
    info_ss = (mass * score_sigma**2).sum(-1)
    return torch.stack(
        [torch.stack([info_nn, info_ns], -1), torch.stack([info_ns, info_ss], -1)], -2
    )
