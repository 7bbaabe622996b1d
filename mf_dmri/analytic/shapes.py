"""Analytic eigenbases of the slab, disk and ball, and the domains built from them.

Sizes may be tensors with ``requires_grad``: the unit-size closed forms are computed once
in numpy and scaled in torch, so derivatives with respect to radius/width are exact.

Mode cutoff: keep every mode with eigenvalue <= ``max_eigenvalue`` [1/m^2]; or give
``length_scale`` ell [m] for ``max_eigenvalue = (2 pi / ell)^2``; by default
``max_eigenvalue = DEFAULT_CUTOFF[shape] / size^2`` (size = radius, or width for the
slab), chosen so that PGSE signals with D = 2e-9 m^2/s, R = 5 um and b <= 10,000 s/mm^2
are converged to better than 1e-6 (see tests/test_analytic_convergence.py and
validation/).  Degenerate clusters are never cut.

Every builder takes ``plausibility`` (keyword): sizes are checked against the ``length``
range of :mod:`mf_dmri.plausibility` (a radius of 5 is refused: did you mean 5 um?).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from mf_dmri._checks import DTYPE, as_real_tensor, positive_scalar
from mf_dmri.analytic.bases import (
    UnitBasis,
    unit_ball_basis,
    unit_disk_basis,
    unit_interval_basis,
)
from mf_dmri.eigenbasis import Eigenbasis, ProductDomain
from mf_dmri.plausibility import Plausibility, check_plausible

#: Default dimensionless cutoff max_eigenvalue * size^2 per shape.
DEFAULT_CUTOFF = {"interval": 3200.0, "disk": 1000.0, "ball": 800.0}

_UNIT_BUILDERS: dict[str, Callable[[float], UnitBasis]] = {
    "interval": unit_interval_basis,
    "disk": unit_disk_basis,
    "ball": unit_ball_basis,
}


@lru_cache(maxsize=32)
def _unit_basis(shape: str, unit_cutoff: float) -> UnitBasis:
    return _UNIT_BUILDERS[shape](unit_cutoff)


def _unit_cutoff(
    shape: str, size: float, max_eigenvalue: float | None, length_scale: float | None
) -> float:
    if max_eigenvalue is not None and length_scale is not None:
        raise ValueError("give either max_eigenvalue or length_scale, not both")
    if length_scale is not None:
        max_eigenvalue = (
            2.0 * math.pi / float(positive_scalar(length_scale, "length_scale", "m"))
        ) ** 2
    if max_eigenvalue is None:
        return DEFAULT_CUTOFF[shape]
    if not max_eigenvalue >= 0 or math.isinf(max_eigenvalue):
        raise ValueError("max_eigenvalue must be a finite non-negative number [1/m^2]")
    return float(max_eigenvalue) * size**2


def _scaled_basis(
    shape: str,
    size: torch.Tensor,
    axes: torch.Tensor,
    max_eigenvalue: float | None,
    length_scale: float | None,
) -> Eigenbasis:
    unit_cutoff = _unit_cutoff(shape, float(size.detach()), max_eigenvalue, length_scale)
    eigenvalues, moments, integrals, volume = _unit_basis(shape, round(unit_cutoff, 9))
    unit = Eigenbasis(
        eigenvalues=torch.from_numpy(eigenvalues),
        moments=torch.from_numpy(moments),
        mode_integrals=torch.from_numpy(integrals),
        volume=torch.tensor(volume, dtype=DTYPE),
        axes=axes.detach().cpu(),
        label=shape,
    ).to(size.device)
    scaled = unit.scaled(size)
    return Eigenbasis(
        scaled.eigenvalues,
        scaled.moments,
        scaled.mode_integrals,
        scaled.volume,
        axes.to(size.device),
        label=shape,
        isotropic=shape in ("disk", "ball"),
    )


def frame_from_axis(axis: torch.Tensor | np.ndarray | tuple) -> torch.Tensor:
    """Orthonormal rows (e1, e2, n) with n the normalised ``axis`` [-] (differentiable)."""
    n = as_real_tensor(axis, "axis").reshape(3)
    norm = torch.linalg.vector_norm(n)
    if float(norm.detach()) == 0:
        raise ValueError("axis must be a non-zero vector")
    n = n / norm
    helper = torch.zeros(3, dtype=DTYPE, device=n.device)
    helper[int(torch.argmin(n.detach().abs()))] = 1.0
    e1 = helper - (helper @ n) * n
    e1 = e1 / torch.linalg.vector_norm(e1)
    e2 = torch.linalg.cross(n, e1)
    return torch.stack([e1, e2, n])


def interval_basis(
    length: torch.Tensor | float,
    direction=(1.0, 0.0, 0.0),
    *,
    max_eigenvalue: float | None = None,
    length_scale: float | None = None,
    plausibility: Plausibility | None = None,
) -> Eigenbasis:
    """Eigenbasis of an interval of ``length`` [m] along ``direction`` [-] (1-D factor)."""
    size = positive_scalar(length, "length", "m")
    check_plausible("length", size, "length", plausibility)
    axes = frame_from_axis(direction)[2:3].to(size.device)
    return _scaled_basis("interval", size, axes, max_eigenvalue, length_scale)


def disk_basis(
    radius: torch.Tensor | float,
    axis=(0.0, 0.0, 1.0),
    *,
    max_eigenvalue: float | None = None,
    length_scale: float | None = None,
    plausibility: Plausibility | None = None,
) -> Eigenbasis:
    """Eigenbasis of a disk of ``radius`` [m] normal to ``axis`` [-] (2-D factor)."""
    size = positive_scalar(radius, "radius", "m")
    check_plausible("length", size, "radius", plausibility)
    axes = frame_from_axis(axis)[:2].to(size.device)
    return _scaled_basis("disk", size, axes, max_eigenvalue, length_scale)


def ball_basis(
    radius: torch.Tensor | float,
    *,
    max_eigenvalue: float | None = None,
    length_scale: float | None = None,
    plausibility: Plausibility | None = None,
) -> Eigenbasis:
    """Eigenbasis of a ball of ``radius`` [m] (3-D)."""
    size = positive_scalar(radius, "radius", "m")
    check_plausible("length", size, "radius", plausibility)
    return _scaled_basis(
        "ball", size, torch.eye(3, dtype=DTYPE, device=size.device), max_eigenvalue, length_scale
    )


def slab(
    width: torch.Tensor | float,
    normal=(1.0, 0.0, 0.0),
    *,
    max_eigenvalue: float | None = None,
    length_scale: float | None = None,
    plausibility: Plausibility | None = None,
) -> ProductDomain:
    """Two parallel impermeable planes ``width`` [m] apart with unit ``normal`` [-]; free
    diffusion in the plane."""
    factor = interval_basis(
        width,
        normal,
        max_eigenvalue=max_eigenvalue,
        length_scale=length_scale,
        plausibility=plausibility,
    )
    free = frame_from_axis(normal)[:2].to(factor.device)
    return ProductDomain(factors=(factor,), free_axes=free)


def cylinder(
    radius: torch.Tensor | float,
    axis=(0.0, 0.0, 1.0),
    *,
    length: torch.Tensor | float | None = None,
    max_eigenvalue: float | None = None,
    length_scale: float | None = None,
    plausibility: Plausibility | None = None,
) -> ProductDomain:
    """Cylinder of ``radius`` [m] along ``axis`` [-]: a disk times free diffusion along the
    axis, or times an interval if ``length`` [m] is given (a closed cylinder)."""
    disk = disk_basis(
        radius,
        axis,
        max_eigenvalue=max_eigenvalue,
        length_scale=length_scale,
        plausibility=plausibility,
    )
    if length is None:
        free = frame_from_axis(axis)[2:3].to(disk.device)
        return ProductDomain(factors=(disk,), free_axes=free)
    bounded = interval_basis(
        length,
        axis,
        max_eigenvalue=max_eigenvalue,
        length_scale=length_scale,
        plausibility=plausibility,
    )
    return ProductDomain(factors=(disk, bounded), free_axes=torch.zeros(0, 3, dtype=DTYPE))


def sphere(
    radius: torch.Tensor | float,
    *,
    max_eigenvalue: float | None = None,
    length_scale: float | None = None,
    plausibility: Plausibility | None = None,
) -> ProductDomain:
    """Ball of ``radius`` [m] (impermeable sphere)."""
    ball = ball_basis(
        radius,
        max_eigenvalue=max_eigenvalue,
        length_scale=length_scale,
        plausibility=plausibility,
    )
    return ProductDomain(factors=(ball,), free_axes=torch.zeros(0, 3, dtype=DTYPE))


def free() -> ProductDomain:
    """Unrestricted (Gaussian) diffusion in every direction: an extra-cellular "ball".  It
    has no size, so a signal mixing it with other compartments needs volume fractions."""
    return ProductDomain(factors=(), free_axes=torch.eye(3, dtype=DTYPE))
