"""Interpolation tables of the restricted cylinder (disk) and sphere (ball) signals for
voxel-wise fitting.

For measurements whose gradient keeps one direction n with a common time profile p(t)
(every PGSE or OGSE shell of one timing: g_m(t) = c_m p(t) n_m), the normalised signal of a
disk or ball of radius R with diffusivity D depends on two numbers only: by scaling the unit
basis (eigenvalues / R^2, moments x R; ``mf_dmri.inverse.kernels``),

    E = F(tau, g),  tau = D / R^2 [1/s],  g = c_perp R [T],

where c_perp is the amplitude [T/m] of the gradient component that the shape restricts
(perpendicular to a cylinder's axis; all of it for a sphere).  F is the matrix-formalism
signal of the unit disk/ball reduced to the subspace reachable along one direction
(exactly the kernel of :class:`~mf_dmri.inverse.CylinderModel` and
:class:`~mf_dmri.inverse.SphereModel`), so a table of F in (log tau, g^2) over the fit's
parameter bounds replaces one matrix exponential per voxel and measurement by a polynomial
evaluation.  The table is built with the batched propagation (one diffusivity vector x one
amplitude vector) and checked against the exact F at independent points
(:func:`mf_dmri.inverse.chebyshev.fit_chebyshev`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.inverse.chebyshev import ChebyshevTable, chebyshev_value, fit_chebyshev
from mf_dmri.inverse.kernels import _reduced_unit, signed_amplitudes
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.propagation import factor_signal

#: default largest interpolation error of a table [-] (absolute, normalised signal)
TABLE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class MeasurementGroupGeometry:
    """Measurements of one timing: piece ``durations`` (P,) [s], the unit time
    ``profile`` (P,) [-] (largest |value| 1), per measurement the amplitude (M,) [T/m] and
    unit direction (M, 3) [-] (zero for b = 0) and the b-value (M,) [s/m^2]."""

    durations: torch.Tensor
    profile: torch.Tensor
    amplitudes: torch.Tensor
    directions: torch.Tensor
    bvalues: torch.Tensor
    gyromagnetic_ratio: float


def group_geometry(pieces: GradientPieces) -> MeasurementGroupGeometry:
    """Split ``pieces`` into a common profile, amplitudes and directions; raises when the
    measurements do not share one time profile (a voxel-wise fit needs it)."""
    split = signed_amplitudes(pieces)
    if split is None:
        raise ValueError(
            "voxel-wise fitting needs gradients that keep one direction per measurement "
            "(PGSE, OGSE); this acquisition changes direction within a measurement"
        )
    signed, directions = split
    signed, directions = signed.detach(), directions.detach()
    scale = signed.abs().max(dim=1).values
    weighted = scale > 0
    if not bool(weighted.any()):
        profile = torch.zeros(pieces.num_pieces, dtype=DTYPE)
    else:
        first = int(torch.nonzero(weighted)[0])
        profile = signed[first] / scale[first]
        if profile.abs().max() > 0 and signed[first][profile.abs().argmax()] < 0:
            profile = -profile
        shapes = signed[weighted] / scale[weighted, None]
        same = (shapes - profile).abs().max(dim=1).values < 1e-10
        flipped = (shapes + profile).abs().max(dim=1).values < 1e-10
        if not bool((same | flipped).all()):
            raise ValueError(
                "the measurements of one timing must share one gradient time profile "
                "(only the amplitude and direction may change) for voxel-wise fitting"
            )
    return MeasurementGroupGeometry(
        pieces.durations.detach(),
        profile,
        scale,
        directions,
        pieces.bvalues().detach(),
        pieces.gyromagnetic_ratio,
    )


def _unit_basis(shape: str, unit_cutoff: float) -> Eigenbasis:
    eigenvalues, moment, integrals, volume = _reduced_unit(shape, round(float(unit_cutoff), 9))
    return Eigenbasis(
        eigenvalues,
        moment[None],
        integrals,
        volume,
        torch.tensor([[1.0, 0.0, 0.0]], dtype=DTYPE),
        label=f"reduced unit {shape}",
    )


@dataclass(frozen=True)
class RestrictedTable:
    """F(log tau, g^2) of one shape ('disk' or 'ball') and one measurement group."""

    shape: str
    table: ChebyshevTable

    def signal(
        self, radius: torch.Tensor, diffusivity: torch.Tensor, amplitude: torch.Tensor
    ) -> torch.Tensor:
        """Normalised restricted signal (N, K) for radii [m] and diffusivities [m^2/s], each
        (N,), and restricted gradient amplitudes [T/m] (N, K); differentiable (forward and
        reverse mode) in all three."""
        log_rate = torch.log(diffusivity / radius**2)
        strength = (amplitude * radius[:, None]) ** 2
        return chebyshev_value(self.table, log_rate, strength)


class FrozenTable:
    """First-order expansion of a :class:`RestrictedTable` about the points of its first
    call: the same values and first derivatives there, at the cost of a few elementwise
    operations, so that a Jacobian by forward-mode passes (one per parameter) evaluates
    the polynomial once."""

    def __init__(self, table: RestrictedTable) -> None:
        self.table = table
        self.point: tuple[torch.Tensor, ...] | None = None

    def signal(self, radius, diffusivity, amplitude) -> torch.Tensor:
        log_rate = torch.log(diffusivity / radius**2)
        strength = (amplitude * radius[:, None]) ** 2
        if self.point is None:
            u, v = log_rate.detach(), strength.detach()
            self.point = (u, v, *self.table.table.evaluate(u, v))
        u, v, value, du, dv = self.point
        return value + du * (log_rate - u)[:, None] + dv * (strength - v)


def restricted_table(
    shape: str,
    group: MeasurementGroupGeometry,
    *,
    radius_range: tuple[float, float],
    diffusivity_range: tuple[float, float],
    unit_cutoff: float,
    tolerance: float = TABLE_TOLERANCE,
) -> RestrictedTable:
    """The table of ``shape`` ('disk' or 'ball') for ``group`` over radii [m] and
    diffusivities [m^2/s] in the given ranges (the fit's parameter bounds)."""
    if shape not in ("disk", "ball"):
        raise ValueError(f"shape must be 'disk' or 'ball', got {shape!r}")
    (r_lo, r_hi), (d_lo, d_hi) = radius_range, diffusivity_range
    if not (0 < r_lo < r_hi and 0 < d_lo < d_hi):
        raise ValueError("radius and diffusivity ranges must be positive and increasing")
    basis = _unit_basis(shape, unit_cutoff)
    durations, profile = group.durations, group.profile
    gamma = group.gyromagnetic_ratio

    def exact(log_rates: np.ndarray, strengths: np.ndarray) -> np.ndarray:
        rates = torch.as_tensor(np.exp(log_rates), dtype=DTYPE)
        amplitudes = torch.as_tensor(np.sqrt(np.clip(strengths, 0, None)), dtype=DTYPE)
        gradients = torch.zeros(amplitudes.numel(), durations.numel(), 3, dtype=DTYPE)
        gradients[:, :, 0] = amplitudes[:, None] * profile[None, :]
        pieces = GradientPieces(durations, gradients, gamma)
        return factor_signal(basis, rates, pieces, reduce=False).real.numpy()

    u_range = (math.log(d_lo / r_hi**2), math.log(d_hi / r_lo**2))
    v_max = max(float(group.amplitudes.max()) * r_hi, 1e-30) ** 2
    table = fit_chebyshev(exact, u_range, (0.0, v_max), tolerance=tolerance)
    return RestrictedTable(shape, table)
