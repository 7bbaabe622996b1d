"""Gradient direction schemes and unit-vector checks."""

from __future__ import annotations

import math
import operator

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
        raise ValueError(
            f"{name} must be unit vectors (|norm - 1| <= {tolerance:g}), but entry {index} "
            f"has norm {float(norms[index]):.6g}; normalise the directions"
            + (" (zero vectors are allowed only where the amplitude is 0)" if allow_zero is
               not False else "")
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
    pairs = torch.triu_indices(directions.shape[0], directions.shape[0], offset=1)
    first, second = directions[pairs[0]], directions[pairs[1]]
    minus = torch.linalg.vector_norm(first - second, dim=-1)
    plus = torch.linalg.vector_norm(first + second, dim=-1)
    return (1.0 / minus + 1.0 / plus).sum()


def _to_half_sphere(directions: torch.Tensor) -> torch.Tensor:
    """Flip each vector to its antipode if needed so the first non-zero of (z, y, x) > 0."""
    x, y, z = directions.unbind(-1)
    sign = torch.where(z != 0, torch.sign(z), torch.where(y != 0, torch.sign(y), torch.sign(x)))
    return torch.where(sign[:, None] < 0, -directions, directions)


def electrostatic_directions(
    num_points: int, *, seed: int = 0, max_iterations: int = 500
) -> torch.Tensor:
    """Half-sphere directions minimising the antipodally symmetric electrostatic energy
    (Jones et al. 1999), shape (num_points, 3) [-]; deterministic for a given seed.

    Starts from Gaussian random points drawn with ``seed`` and minimises
    :func:`electrostatic_energy` with L-BFGS over unnormalised vectors.

    Args:
        num_points: number of directions (antipodal pairs count once), positive.
        seed: seed of the random start.
        max_iterations: L-BFGS iteration limit.
    """
    count = _count(num_points)
    generator = torch.Generator().manual_seed(int(seed))
    start = torch.randn(count, 3, dtype=DTYPE, generator=generator)
    if count == 1:
        return _to_half_sphere(start / torch.linalg.vector_norm(start, dim=-1, keepdim=True))
    variables = start.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS(
        [variables], max_iter=_count(max_iterations, "max_iterations"),
        tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        unit = variables / torch.linalg.vector_norm(variables, dim=-1, keepdim=True)
        energy = electrostatic_energy(unit)
        energy.backward()
        return energy

    optimiser.step(closure)
    result = variables.detach()
    return _to_half_sphere(result / torch.linalg.vector_norm(result, dim=-1, keepdim=True))
