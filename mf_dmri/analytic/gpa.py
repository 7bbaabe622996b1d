"""Free diffusion and the Gaussian phase approximation (GPA).

The GPA assumes the accumulated phase is Gaussian, so ln E = -<phi^2>/2 with
<phi^2> = gamma^2 int int g(t).<x(t) x(t')> g(t') dt dt'.  In a restricted domain the
position autocorrelation is sum_k h_k h_k^T exp(-D lambda_k |t - t'|) with
h_k = integral of x phi_k dV / sqrt(V) (Stepisnik 1993, Physica B 183, 343; Grebenkov
2007, Rev. Mod. Phys. 79, 1077, Sec. IV.B).  ``gpa_signal`` evaluates it exactly for any
piecewise-constant waveform from eigen-data; the classical PGSE closed forms below are
independent references (Neuman 1974, J. Chem. Phys. 60, 4508 for the cylinder and slab;
Murday and Cotts 1968, J. Chem. Phys. 48, 4938 for the sphere; van Gelderen et al. 1994,
J. Magn. Reson. B 103, 255).

Validity: exact at low b (ln E to O(b)); it misses the diffraction-like deviations of
restricted diffusion at large q (the error of E grows like b^2, see validation/).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mf_dmri.analytic.roots import bessel_derivative_zeros, spherical_bessel_derivative_zeros
from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.units import GAMMA_PROTON


def free_diffusion_signal(
    pieces: GradientPieces,
    diffusivity: torch.Tensor | float,
) -> torch.Tensor:
    """Free (Gaussian) diffusion: E = exp(-D b), real (M,) (Stejskal and Tanner 1965).

    Args:
        pieces: the acquisition's gradients (exact b-values are used).
        diffusivity: diffusion coefficient [m^2/s].
    """
    return torch.exp(-diffusivity * pieces.bvalues())


def _self_term(rate: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """int_0^tau int_0^tau exp(-rate |t - s|) ds dt = 2 (x - 1 + e^-x) / rate^2, x = rate tau,
    with a series for small x (no cancellation, exact limit tau^2 at rate 0)."""
    x = rate * tau
    small = x < 1e-3
    xs = torch.where(small, torch.ones_like(x), x)
    big = 2.0 * (xs + torch.expm1(-xs)) / xs**2
    series = 1.0 - x / 3.0 + x**2 / 12.0 - x**3 / 60.0
    return tau**2 * torch.where(small, series, big)


def _decay_factor(rate: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """(1 - exp(-rate tau)) / rate, with the exact limit tau at rate 0."""
    x = rate * tau
    small = x < 1e-8
    safe_rate = torch.where(small, torch.ones_like(rate), rate)
    return torch.where(small, tau * (1.0 - 0.5 * x), -torch.expm1(-x) / safe_rate)


def gpa_signal(
    basis: Eigenbasis, diffusivity: torch.Tensor | float, pieces: GradientPieces
) -> torch.Tensor:
    """GPA signal of one restricted factor for any piecewise-constant waveform, real (M,).

    Args:
        basis: eigen-data of the factor (the sum over modes converges fast: the weights
            h_k^2 decay like lambda_k^-2).
        diffusivity: diffusion coefficient [m^2/s].
        pieces: the acquisition's gradients.
    """
    diffusivity = torch.as_tensor(diffusivity, dtype=basis.eigenvalues.dtype)
    local = pieces.gradients.to(basis.device) @ basis.axes.T  # (M, P, d)
    first_moments = torch.einsum("kij,j->ki", basis.moments, basis.mode_integrals)
    first_moments = first_moments / torch.sqrt(basis.volume)  # (d, L): h_k per axis
    projections = torch.einsum("mpd,dl->mpl", local, first_moments)  # (M, P, L)
    rate = diffusivity * basis.eigenvalues  # (L,)
    durations = pieces.durations.to(basis.device)
    phase_variance = torch.zeros(local.shape[0], dtype=local.dtype, device=local.device)
    carried = torch.zeros_like(projections[:, 0])  # sum over earlier pieces, decayed
    for p in range(durations.numel()):
        tau = durations[p]
        h = projections[:, p]
        decay = _decay_factor(rate, tau)
        phase_variance = phase_variance + (h**2 * _self_term(rate, tau)).sum(-1)
        phase_variance = phase_variance + 2.0 * (h * carried * decay).sum(-1)
        carried = carried * torch.exp(-rate * tau) + h * decay
    return torch.exp(-0.5 * pieces.gyromagnetic_ratio**2 * phase_variance)


def _pgse_bracket(rate: np.ndarray, pulse_duration: float, pulse_separation: float):
    """F(a) / a^2 with F(a) = 2 a delta - 2 + 2 e^-a delta + 2 e^-a Delta - e^-a(Delta-delta)
    - e^-a(Delta+delta), the PGSE double time integral of exp(-a |t - t'|) over 2."""
    d, s = pulse_duration, pulse_separation
    f = (
        2 * rate * d
        - 2
        + 2 * np.exp(-rate * d)
        + 2 * np.exp(-rate * s)
        - np.exp(-rate * (s - d))
        - np.exp(-rate * (s + d))
    )
    return f / rate**2


def _check_pgse(pulse_duration: float, pulse_separation: float) -> None:
    if not 0 < pulse_duration <= pulse_separation:
        raise ValueError("need 0 < pulse_duration <= pulse_separation [s]")


def _pgse_gpa(
    gradient, weights, eigenvalues, pulse_duration, pulse_separation, diffusivity, gamma
) -> np.ndarray:
    """exp(-(gamma G)^2 sum_k w_k F(D lambda_k) / (D lambda_k)^2): the common form of the
    classical PGSE GPA formulas below."""
    bracket = _pgse_bracket(diffusivity * eigenvalues, pulse_duration, pulse_separation)
    return np.exp(-((gamma * np.asarray(gradient)) ** 2) * np.sum(weights * bracket))


def gpa_pgse_cylinder(
    gradient: np.ndarray,
    pulse_duration: float,
    pulse_separation: float,
    radius: float,
    diffusivity: float,
    gamma: float = GAMMA_PROTON,
    num_roots: int = 200,
) -> np.ndarray:
    """Neuman (1974) GPA for a cylinder, gradient perpendicular to the axis.

    Args:
        gradient: gradient amplitudes [T/m]; pulse_duration, pulse_separation [s];
        radius [m]; diffusivity [m^2/s]; gamma [rad/(s T)]."""
    _check_pgse(pulse_duration, pulse_separation)
    alpha = bessel_derivative_zeros(1, 4.0 * num_roots)[:num_roots] / radius
    weight = 2.0 / (alpha**2 * (alpha**2 * radius**2 - 1.0))
    return _pgse_gpa(
        gradient, weight, alpha**2, pulse_duration, pulse_separation, diffusivity, gamma
    )


def gpa_pgse_sphere(
    gradient: np.ndarray,
    pulse_duration: float,
    pulse_separation: float,
    radius: float,
    diffusivity: float,
    gamma: float = GAMMA_PROTON,
    num_roots: int = 200,
) -> np.ndarray:
    """Murday and Cotts (1968) GPA for a sphere.  Units as in ``gpa_pgse_cylinder``."""
    _check_pgse(pulse_duration, pulse_separation)
    alpha = spherical_bessel_derivative_zeros(1, 4.0 * num_roots)[:num_roots] / radius
    weight = 2.0 / (alpha**2 * (alpha**2 * radius**2 - 2.0))
    return _pgse_gpa(
        gradient, weight, alpha**2, pulse_duration, pulse_separation, diffusivity, gamma
    )


def gpa_pgse_slab(
    gradient: np.ndarray,
    pulse_duration: float,
    pulse_separation: float,
    width: float,
    diffusivity: float,
    gamma: float = GAMMA_PROTON,
    num_terms: int = 2000,
) -> np.ndarray:
    """Neuman (1974) GPA between parallel planes ``width`` [m] apart, gradient along the
    normal.  Other units as in ``gpa_pgse_cylinder``."""
    _check_pgse(pulse_duration, pulse_separation)
    n = np.arange(1, 2 * num_terms, 2, dtype=float)
    weight = 8.0 * width**2 / (math.pi**4 * n**4)
    return _pgse_gpa(
        gradient,
        weight,
        (n * math.pi / width) ** 2,
        pulse_duration,
        pulse_separation,
        diffusivity,
        gamma,
    )
