"""Gradient direction schemes and unit-vector checks."""

from __future__ import annotations

import math
import operator

import numpy as np
import scipy.optimize
import torch

from mf_dmri._checks import DTYPE, as_real_tensor

#: default tolerance on | |d| - 1 | for directions given to acquisitions [-]
UNIT_TOLERANCE = 1e-6


def check_unit_vectors(
    directions,
    name: str = "directions",
    *,
    tolerance: float = UNIT_TOLERANCE,
    allow_zero: torch.Tensor | bool = False,
) -> torch.Tensor:
    """Validate that ``directions`` (..., 3) [-] are unit vectors; return them as float64.

    Args:
        directions: array (..., 3) [-].
        name: name used in error messages.
        tolerance: accepted deviation of the norm from 1 [-].
        allow_zero: True, or a boolean mask broadcastable to ``directions.shape[:-1]``,
            marking vectors that may also be exactly zero (e.g. b = 0 measurements).
    """
    tensor = as_real_tensor(directions, name)
    if tensor.ndim == 0 or tensor.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (..., 3), got {tuple(tensor.shape)}")
    norms = torch.linalg.vector_norm(tensor.detach(), dim=-1)
    bad = (norms - 1.0).abs() > tolerance
    if not (isinstance(allow_zero, bool) and not allow_zero):
        bad = bad & ~(torch.as_tensor(allow_zero, device=norms.device) & (norms == 0))
    if bool(bad.any()):
        index = tuple(int(i) for i in torch.nonzero(bad)[0])
        if float(norms[index]) == 0:
            raise ValueError(
                f"{name} entry {index} is the zero vector, which has no direction; give a "
                "unit vector, or set that measurement's amplitude (b-value) to 0"
            )
        raise ValueError(
            f"{name} must be unit vectors (|norm - 1| <= {tolerance:g}), but entry {index} "
            f"has norm {float(norms[index]):.6g}; normalise the directions"
        )
    return tensor


def _count(num_points, name: str = "num_points") -> int:
    if isinstance(num_points, bool):
        raise TypeError(f"{name} must be a positive integer, got a bool")
    try:
        count = operator.index(num_points)
    except TypeError as exc:
        raise TypeError(f"{name} must be a positive integer, got {num_points!r}") from exc
    if count < 1:
        raise ValueError(f"{name} must be a positive integer, got {count}")
    return count


def fibonacci_sphere(num_points: int, *, hemisphere: bool = False) -> torch.Tensor:
    """Nearly uniform unit vectors on the sphere from the Fibonacci (golden-angle) lattice
    (Gonzalez, Math. Geosci. 42, 49, 2010), shape (num_points, 3) [-].

    Args:
        num_points: number of directions, positive.
        hemisphere: if True, cover only z > 0 (suited to antipodally symmetric signals).
    """
    count = _count(num_points)
    index = torch.arange(count, dtype=DTYPE) + 0.5
    z = 1.0 - index / count if hemisphere else 1.0 - 2.0 * index / count
    radius = torch.sqrt(torch.clamp(1.0 - z**2, min=0.0))
    golden_angle = math.pi * (3.0 - math.sqrt(5.0))
    azimuth = golden_angle * torch.arange(count, dtype=DTYPE)
    return torch.stack([radius * torch.cos(azimuth), radius * torch.sin(azimuth), z], dim=-1)


def electrostatic_energy(directions: torch.Tensor) -> torch.Tensor:
    """Antipodally symmetric Coulomb energy sum_{i<j} 1/|d_i - d_j| + 1/|d_i + d_j| [-]
    (Jones, Horsfield & Simmons, Magn. Reson. Med. 42, 515, 1999)."""
    rows, columns = torch.triu_indices(*directions.shape[:1] * 2, offset=1)
    cosines = (directions @ directions.T)[rows, columns]
    minus = torch.sqrt(2.0 - 2.0 * cosines)  # |d_i - d_j| for unit vectors
    plus = torch.sqrt(2.0 + 2.0 * cosines)  # |d_i + d_j|
    return (1.0 / minus + 1.0 / plus).sum()


def _to_half_sphere(directions: torch.Tensor) -> torch.Tensor:
    """Flip each vector to its antipode if needed so the first non-zero of (z, y, x) > 0."""
    x, y, z = directions.unbind(-1)
    sign = torch.where(z != 0, torch.sign(z), torch.where(y != 0, torch.sign(y), torch.sign(x)))
    return torch.where(sign[:, None] < 0, -directions, directions)


def _energy_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
    """Electrostatic energy of the normalised rows of ``flat`` (n*3,) and its gradient."""
    vectors = flat.reshape(-1, 3)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / norms
    cosines = np.clip(np.einsum("ik,jk->ij", unit, unit), -1.0, 1.0)  # no BLAS threads
    np.fill_diagonal(cosines, 0.0)  # diagonal terms are removed below
    minus, plus = 2.0 - 2.0 * cosines, 2.0 + 2.0 * cosines
    off_diagonal = ~np.eye(len(unit), dtype=bool)
    energy = 0.5 * float((minus[off_diagonal] ** -0.5 + plus[off_diagonal] ** -0.5).sum())
    weights = np.where(off_diagonal, minus**-1.5 - plus**-1.5, 0.0)  # dE/d cos_ij
    unit_gradient = np.einsum("ij,jk->ik", weights, unit)
    radial = (unit_gradient * unit).sum(axis=1, keepdims=True)
    return energy, ((unit_gradient - radial * unit) / norms).ravel()


def electrostatic_directions(num_points: int, *, seed: int = 0) -> torch.Tensor:
    """Half-sphere directions minimising the antipodally symmetric electrostatic energy
    (Jones et al. 1999), shape (num_points, 3) [-]; deterministic for a given seed.

    Starts from Gaussian random points drawn with ``seed`` and minimises
    :func:`electrostatic_energy` with L-BFGS (scipy) over unnormalised vectors, then flips
    each vector to the half sphere (see :func:`fibonacci_sphere` for a closed-form set).

    Args:
        num_points: number of directions (antipodal pairs count once), positive.
        seed: seed of the random start.
    """
    count = _count(num_points)
    start = np.random.default_rng(int(seed)).standard_normal((count, 3))
    if count > 1:
        result = scipy.optimize.minimize(
            _energy_and_gradient,
            start.ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 10000, "gtol": 1e-10, "ftol": 1e-15},
        )
        start = result.x.reshape(count, 3)
    unit = torch.as_tensor(start / np.linalg.norm(start, axis=1, keepdims=True), dtype=DTYPE)
    return _to_half_sphere(unit)
