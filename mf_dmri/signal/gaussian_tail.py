"""The Gaussian-phase estimate of the error of cutting the modes above a cutoff.

In the Gaussian phase approximation the log-signal of a restricted domain is a sum over
its Neumann modes n (Stepisnik, Physica B 183 (1993) 343; Grebenkov, Rev. Mod. Phys. 79
(2007) 1077, section IV):

    -ln E = 1/2 sum_n sum_k B_nk F_k(D lambda_n),
    F_k(r) = int int gamma g_k(t) gamma g_k(t') exp(-r |t - t'|) dt dt',

with B_nk = |<x_k, phi_n>|^2 / V the weight of the coordinate x_k on mode n and g_k the
gradient along the factor's local axis k.  A basis cut at lambda_0 leaves out the modes
above it, so the error of the normalised signal (E <= 1) is about
1/2 sum_{lambda_n > lambda_0} B_n F(D lambda_n).

The weights' tail follows from the Neumann condition: <x_k, phi_n> = int_dOmega phi_n n_k
dS / lambda_n, which gives sum_{lambda_n > Lambda} B_nk = 2 / (3 pi) (int n_k^2 dS / V)
Lambda^(-3/2) at large Lambda.  The geometric factor int n_k^2 dS / V is 1 / R for the
slab of half-width R, the disk and the ball of radius R alike (exact in 1-D: B_n = 8 L^2 /
(n pi)^4 for odd n on an interval of length L = 2R), so with K = R sqrt(lambda):

    error(K) ~ 1 / pi int_K^inf F(D u^2 / R^2) R^2 u^-4 du.

Under a narrow pulse pair F = 2 q^2 (1 - exp(-r Delta)) and the error is
2 / (3 pi) (q R)^2 K^-3: modes far above the damping scale 1 / sqrt(D Delta) still count,
which a cutoff from the damping time alone misses.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.canonical import canonical_gradients, distinct_rows

#: Points per doubling of K in the quadrature of the tail, and doublings covered.
_POINTS_PER_DOUBLING = 4
_DOUBLINGS = 12


def dephasing_spectrum(
    local: torch.Tensor, durations: torch.Tensor, rates: torch.Tensor
) -> torch.Tensor:
    """F(r) = sum_k int int G_k(t) G_k(t') exp(-r |t - t'|) dt dt' [rad^2/m^2] of every
    row of ``local`` (M, P, d), the angular gradients gamma g [rad/(m s)] along d axes held
    over ``durations`` (P,) [s], at every rate r of ``rates`` (R,) [1/s]; shape (M, R).
    Exact for piecewise-constant gradients (one recursion over the pieces)."""
    rates = rates.to(local)[None, :, None]  # (1, R, 1)
    memory = local.new_zeros(local.shape[0], rates.shape[1], local.shape[2])
    total = local.new_zeros(local.shape[0], rates.shape[1])
    for index, duration in enumerate(durations.tolist()):
        field = local[:, index, None, :]  # (M, 1, d)
        scaled = rates * duration
        small = scaled < 1e-6
        safe = torch.where(small, torch.ones_like(rates), rates)
        # (1 - exp(-r tau)) / r and (tau - (1 - exp(-r tau)) / r) / r, series at r tau -> 0
        gained = torch.where(small, duration * (1.0 - scaled / 2.0), -torch.expm1(-scaled) / safe)
        inner = torch.where(
            small, duration**2 / 2.0 * (1.0 - scaled / 3.0), (duration - gained) / safe
        )
        total = total + 2.0 * (field * memory).sum(-1) * gained[..., 0]
        total = total + 2.0 * (field**2).sum(-1) * inner[..., 0]
        memory = memory * torch.exp(-scaled) + field * gained
    return total


def largest_dephasing_spectrum(
    pieces: GradientPieces, axes: torch.Tensor, rates: torch.Tensor
) -> torch.Tensor:
    """The largest over the measurements of :func:`dephasing_spectrum` with the gradients
    of ``pieces`` along the rows of ``axes`` (d, 3), (R,).  Waveforms of one direction each
    are reduced to their distinct shapes first (a shell of many directions is one)."""
    with torch.no_grad():
        axes = axes.detach().to(pieces.gradients)
        local = pieces.gyromagnetic_ratio * pieces.gradients.detach() @ axes.T  # (M, P, d)
        durations = pieces.durations.detach()
        canonical = canonical_gradients(local)
        if canonical is None:
            return dephasing_spectrum(local, durations, rates).amax(dim=0)
        rows = canonical[..., 0]
        scales = rows.abs().amax(dim=1)
        if float(scales.max()) == 0.0:
            return rates.new_zeros(rates.shape)
        rows, scales = rows[scales > 0], scales[scales > 0]
        shapes = rows / scales[:, None]
        representatives, inverse = distinct_rows(shapes)
        if inverse is None:
            inverse = torch.arange(rows.shape[0], device=rows.device)
        largest = torch.zeros(representatives.numel(), dtype=rows.dtype, device=rows.device)
        largest = largest.scatter_reduce(0, inverse, scales**2, reduce="amax")
        spectra = dephasing_spectrum(shapes[representatives, :, None], durations, rates)
        return (largest[:, None] * spectra).amax(dim=0)


def tail_errors(
    pieces: GradientPieces, axes: torch.Tensor, extent: float, diffusivity: float, low: float
) -> tuple[np.ndarray, np.ndarray]:
    """(K, error): the Gaussian-phase estimate of the error [-] of cutting at the
    dimensionless cutoffs K = R sqrt(lambda_0) on a geometric grid from ``low`` up
    (``_DOUBLINGS`` doublings), the largest over the measurements (module docstring);
    ``extent`` R [m], ``diffusivity`` D [m^2/s]."""
    count = _POINTS_PER_DOUBLING * _DOUBLINGS
    units = low * 2.0 ** (np.arange(count + 1) / _POINTS_PER_DOUBLING)
    rates = torch.from_numpy(diffusivity * units**2 / extent**2)
    spectrum = largest_dephasing_spectrum(pieces, axes, rates).abs().cpu().numpy()
    # the integrand in ln u, F(u) R^2 u^-3 / pi, by trapezoids from the top down; beyond
    # the grid F is held at its last value (it does not grow with the rate there)
    integrand = spectrum * extent**2 / (math.pi * units**3)
    step = math.log(2.0) / _POINTS_PER_DOUBLING
    above = np.cumsum(((integrand[1:] + integrand[:-1]) * step / 2.0)[::-1])[::-1]
    beyond = spectrum[-1] * extent**2 / (3.0 * math.pi * units[-1] ** 3)
    return units, np.append(above, 0.0) + beyond


def gaussian_tail_unit_cutoff(
    pieces: GradientPieces,
    axes: torch.Tensor,
    extent: float,
    diffusivity: float,
    tolerance: float,
    low: float,
) -> float:
    """The smallest K >= ``low`` on the grid of :func:`tail_errors` whose estimated error
    is within ``tolerance`` [-]; the top of the grid (K = ``low`` 2^12) when none is, which
    the memory budget of the caller then refuses with the alternatives named."""
    units, errors = tail_errors(pieces, axes, extent, diffusivity, low)
    within = np.nonzero(errors <= tolerance)[0]
    return float(units[within[0]] if within.size else units[-1])
