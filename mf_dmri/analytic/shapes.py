"""Analytic eigenbases of the slab, disk and ball, and the domains built from them.

Sizes may be tensors with ``requires_grad``: the unit-size closed forms are computed once
in numpy and scaled in torch, so derivatives with respect to radius/width are exact.

Mode cutoff: keep every mode with eigenvalue <= ``max_eigenvalue`` [1/m^2]; or give
``length_scale`` ell [m] for ``max_eigenvalue = (2 pi / ell)^2``.  By default (neither
given) the basis carries an :class:`AnalyticSource`, and the signal layer chooses the
cutoff from the acquisition and a tolerance (:mod:`mf_dmri.signal.cutoff`); the basis
held meanwhile (for direct use of its eigen-data) has
``max_eigenvalue = DEFAULT_CUTOFF[shape] / size^2`` (size = radius, or width for the slab).
Degenerate clusters are never cut.

Every builder takes ``plausibility`` (keyword): sizes are checked against the ``length``
range of :mod:`mf_dmri.plausibility` (a radius of 5 is refused: did you mean 5 um?).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from mf_dmri._checks import DTYPE, as_real_tensor, positive_scalar
from mf_dmri.analytic.axial import unit_ball_axial_basis, unit_disk_axial_basis
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


_AXIAL_BUILDERS: dict[str, Callable[[float], UnitBasis]] = {
    "interval": unit_interval_basis,
    "disk": unit_disk_axial_basis,
    "ball": unit_ball_axial_basis,
}


@lru_cache(maxsize=32)
def _unit_basis(shape: str, unit_cutoff: float, axial: bool = False) -> UnitBasis:
    return (_AXIAL_BUILDERS if axial else _UNIT_BUILDERS)[shape](unit_cutoff)


def predicted_unit_modes(shape: str, unit_cutoff: float, *, axial: bool) -> int:
    """Upper estimate of the number of modes of a unit shape with eigenvalues <=
    ``unit_cutoff`` [-] (K = sqrt(unit_cutoff)): the interval exactly, K / pi + 1; the
    others by Weyl's law with its Neumann boundary term (disk K^2/4 + K/2, ball
    2 K^3 / (9 pi) + K^2 / 4) and, for the axial subspaces (:mod:`mf_dmri.analytic.axial`),
    K^2 / 8 + K / 2 (measured: 326, 1273 and 5054 ball modes at K = 50, 100, 200)."""
    k = math.sqrt(max(unit_cutoff, 0.0))
    if shape == "interval":
        return int(k / math.pi) + 1
    if axial:
        return int(k * k / 8.0 + k / 2.0) + 2
    if shape == "disk":
        return int(k * k / 4.0 + k / 2.0) + 2
    return int(2.0 * k**3 / (9.0 * math.pi) + k * k / 4.0) + 2


@dataclass(frozen=True, eq=False)
class AnalyticSource:
    """Rebuilds an analytic factor at any cutoff (:class:`mf_dmri.eigenbasis.BasisSource`).

    Args:
        shape: 'interval', 'disk' or 'ball'.
        size: width (interval) or radius [m], a scalar tensor (may require grad).
    """

    shape: str
    size: torch.Tensor
    kind: str = "analytic"

    @property
    def extent(self) -> float:
        """Radius, or half the width [m]."""
        size = float(self.size.detach())
        return 0.5 * size if self.shape == "interval" else size

    def basis(self, max_eigenvalue: float, axes: torch.Tensor, *, axial: bool) -> Eigenbasis:
        """The basis with every mode of eigenvalue <= ``max_eigenvalue`` [1/m^2] in the frame
        ``axes`` (fixed: no source); ``axial`` keeps only the axial modes (valid for
        gradients along the first axis only; see :mod:`mf_dmri.analytic.axial`)."""
        unit_cutoff = float(max_eigenvalue) * float(self.size.detach()) ** 2
        basis = _scaled_basis(self.shape, self.size, axes, unit_cutoff, axial=axial)
        if axial and self.shape != "interval":
            basis = Eigenbasis(
                basis.eigenvalues,
                basis.moments,
                basis.mode_integrals,
                basis.volume,
                basis.axes,
                label=f"{self.shape} (axial modes)",
                isotropic=True,
            )
        return basis

    def predicted_modes(self, max_eigenvalue: float, *, axial: bool) -> int:
        """Upper estimate of the modes of ``basis`` (nothing is built)."""
        unit_cutoff = float(max_eigenvalue) * float(self.size.detach()) ** 2
        return predicted_unit_modes(self.shape, unit_cutoff, axial=axial)


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
    shape: str, size: torch.Tensor, axes: torch.Tensor, unit_cutoff: float, *, axial: bool = False
) -> Eigenbasis:
    eigenvalues, moments, integrals, volume = _unit_basis(shape, round(unit_cutoff, 9), axial)
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


def _shape_basis(
    shape: str,
    size: torch.Tensor,
    axes: torch.Tensor,
    max_eigenvalue: float | None,
    length_scale: float | None,
) -> Eigenbasis:
    """The basis at the given cutoff, or, with none given, at the default one carrying an
    :class:`AnalyticSource` (the signal layer then chooses the cutoff)."""
    unit_cutoff = _unit_cutoff(shape, float(size.detach()), max_eigenvalue, length_scale)
    basis = _scaled_basis(shape, size, axes, unit_cutoff)
    if max_eigenvalue is None and length_scale is None:
        basis = replace(basis, source=AnalyticSource(shape, size))
    return basis


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
    return _shape_basis("interval", size, axes, max_eigenvalue, length_scale)


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
    return _shape_basis("disk", size, axes, max_eigenvalue, length_scale)


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
    return _shape_basis(
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
