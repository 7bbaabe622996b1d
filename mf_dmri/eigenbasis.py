"""The one eigenbasis type shared by every geometry (analytic or finite-element).

An :class:`Eigenbasis` holds the Neumann Laplace eigen-data of one connected or disconnected
domain of dimension ``d`` (1 for an interval, 2 for a cross-section, 3 for a volume), in the
local coordinates ``x_1..x_d`` of that domain, plus the frame (``axes``) that places those
local coordinates in the 3-D laboratory frame:

* ``eigenvalues[i] = lambda_i`` [1/m^2] with ``-Laplace phi_i = lambda_i phi_i``,
  ``d phi_i / d n = 0`` on the boundary, in ascending order.  Every connected piece has one
  exact zero eigenvalue (its constant mode).
* ``moments[k, i, j] = integral of x_k phi_i phi_j dV`` [m] (first-moment matrices), with
  the eigenfunctions orthonormal: ``integral of phi_i phi_j dV = delta_ij``.
* ``mode_integrals[i] = integral of phi_i dV`` [m^(d/2)], the projection of a uniform spin
  density on the modes (``sqrt(volume)`` for the constant mode of a connected domain, 0 for
  every other mode).
* ``volume`` [m^d]: length, area or volume of the domain.
* ``axes`` (d x 3): row ``k`` is the laboratory-frame unit vector of local coordinate ``k``.

The basis is computed once per shape (the costly, sequence-independent step) and reused for
every diffusivity and acquisition: the diffusivity only multiplies the eigenvalues.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from mf_dmri._checks import DTYPE, as_real_tensor

#: Relative tolerance under which two eigenvalues count as one degenerate cluster.
CLUSTER_RTOL = 1e-6


class BasisSource(Protocol):
    """How a basis can be rebuilt at another cutoff (the acquisition-aware cutoff of
    :mod:`mf_dmri.signal.cutoff` uses it).  ``extent`` [m]: the largest distance from the
    domain's centre along its local axes (radius, half-width), the length scale of the
    cutoff rule; ``kind``: 'analytic' or 'mesh'."""

    kind: str

    @property
    def extent(self) -> float: ...

    def basis(self, max_eigenvalue: float, axes: torch.Tensor, *, axial: bool) -> Eigenbasis:
        """The basis with every mode of eigenvalue <= ``max_eigenvalue`` [1/m^2], in the
        frame ``axes``; ``axial``: only the modes a gradient along the first axis reaches."""
        ...

    def predicted_modes(self, max_eigenvalue: float, *, axial: bool) -> int:
        """The number of modes ``basis`` would hold (an upper estimate, nothing built)."""
        ...


class DiscretisationModel(Protocol):
    """The finite-element discretisation of a mesh basis (its mesh and element order), from
    which the signal layer bounds the basis' discretisation error
    (:mod:`mf_dmri.signal.discretisation`)."""

    order: int

    def companion(self, max_eigenvalue: float, axes: torch.Tensor) -> Eigenbasis:
        """The same mesh solved with the other element order, every mode of eigenvalue <=
        ``max_eigenvalue`` [1/m^2], in the frame ``axes``."""
        ...

    def scaled(self, factor: float) -> DiscretisationModel:
        """The model of the mesh scaled uniformly by ``factor`` [-]."""
        ...


@dataclass(frozen=True)
class Eigenbasis:
    """Neumann Laplace eigen-data of one domain; see the module docstring for the fields.

    Args:
        eigenvalues: (L,) Laplace eigenvalues [1/m^2], ascending, non-negative.
        moments: (d, L, L) symmetric first-moment matrices [m] in local coordinates.
        mode_integrals: (L,) integrals of the eigenfunctions over the domain [m^(d/2)].
        volume: length/area/volume of the domain [m^d].
        axes: (d, 3) laboratory-frame unit vectors of the local coordinates [-].
        label: free text naming the shape (for reports and caches).
        isotropic: True if the eigen-data are invariant under every rotation of the local
            frame (analytic disk and ball); lets the signal layer treat every gradient
            direction as one.  Never set it for meshes.
        stiffness_coupling: optional (L, L) [1/m^2], zero in value: the first-order change
            of the within-cluster off-diagonal block of Phi^T K Phi, output by the
            differentiable mesh path so that gradients are exact at exactly degenerate
            spectra (docs/eigen_derivatives.md).  The signal uses diag(lambda) + coupling.
        source: optional :class:`BasisSource` that rebuilds the basis at any cutoff; set
            by the analytic shapes when no cutoff is given, so that the signal layer
            chooses the cutoff from the acquisition (:mod:`mf_dmri.signal.cutoff`).
            Dropped by ``scaled``, ``truncated`` and ``first_modes`` (the result is fixed).
        discretisation: optional :class:`DiscretisationModel` of a mesh basis (its mesh
            and element order), set by :func:`mf_dmri.fem.mesh_eigenbasis`; the error bar
            of :func:`mf_dmri.signal.signal_with_error` uses it.  Kept by ``truncated``
            and ``first_modes`` (same mesh), scaled with the basis.
    """

    eigenvalues: torch.Tensor
    moments: torch.Tensor
    mode_integrals: torch.Tensor
    volume: torch.Tensor
    axes: torch.Tensor
    label: str = field(default="", compare=False)
    isotropic: bool = False
    stiffness_coupling: torch.Tensor | None = field(default=None, compare=False)
    source: BasisSource | None = field(default=None, compare=False)
    discretisation: DiscretisationModel | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        eigenvalues = as_real_tensor(self.eigenvalues, "eigenvalues")
        device = eigenvalues.device
        moments = as_real_tensor(self.moments, "moments", device=device)
        mode_integrals = as_real_tensor(self.mode_integrals, "mode_integrals", device=device)
        volume = as_real_tensor(self.volume, "volume", device=device)
        axes = as_real_tensor(self.axes, "axes", device=device)
        object.__setattr__(self, "eigenvalues", eigenvalues)
        object.__setattr__(self, "moments", moments)
        object.__setattr__(self, "mode_integrals", mode_integrals)
        object.__setattr__(self, "volume", volume)
        object.__setattr__(self, "axes", axes)
        self._check_shapes()
        self._check_values()

    def _check_shapes(self) -> None:
        if self.eigenvalues.ndim != 1 or self.eigenvalues.numel() == 0:
            raise ValueError("eigenvalues must be a non-empty 1-D array [1/m^2]")
        n_modes = self.eigenvalues.numel()
        if self.moments.ndim != 3 or self.moments.shape[1:] != (n_modes, n_modes):
            raise ValueError(
                f"moments must have shape (d, {n_modes}, {n_modes}), "
                f"got {tuple(self.moments.shape)}"
            )
        dim = self.moments.shape[0]
        if dim not in (1, 2, 3):
            raise ValueError(f"the domain dimension must be 1, 2 or 3, got {dim}")
        if self.mode_integrals.shape != (n_modes,):
            raise ValueError(f"mode_integrals must have shape ({n_modes},)")
        if self.volume.ndim != 0:
            raise ValueError("volume must be a scalar [m^d]")
        if self.axes.shape != (dim, 3):
            raise ValueError(f"axes must have shape ({dim}, 3), one unit vector per local axis")
        coupling = self.stiffness_coupling
        if coupling is not None and coupling.shape != (n_modes, n_modes):
            raise ValueError(f"stiffness_coupling must have shape ({n_modes}, {n_modes})")

    def _check_values(self) -> None:
        lam = self.eigenvalues.detach()
        scale = float(lam.abs().max()) or 1.0
        if bool((lam < -1e-9 * scale).any()):
            raise ValueError("Neumann eigenvalues must be non-negative; check the eigen-solve")
        if bool((lam[1:] < lam[:-1]).any()):
            raise ValueError("eigenvalues must be sorted in ascending order")
        if float(self.volume.detach()) <= 0:
            raise ValueError("volume must be positive [m^d]")
        gram = self.axes.detach() @ self.axes.detach().T
        if not torch.allclose(
            gram, torch.eye(self.dimension, dtype=DTYPE, device=gram.device), atol=1e-9
        ):
            raise ValueError("axes must be orthonormal rows (a rotation of the local frame)")
        q = self.moments.detach()
        asym = (q - q.transpose(1, 2)).abs().max()
        if float(asym) > 1e-8 * max(float(q.abs().max()), 1e-300):
            raise ValueError("moment matrices must be symmetric")

    @property
    def dimension(self) -> int:
        """Spatial dimension d of the domain (1, 2 or 3)."""
        return int(self.moments.shape[0])

    @property
    def num_modes(self) -> int:
        """Number of eigenmodes L kept in the basis."""
        return int(self.eigenvalues.numel())

    @property
    def device(self) -> torch.device:
        return self.eigenvalues.device

    def to(self, device: torch.device | str) -> Eigenbasis:
        """The same basis with every tensor on ``device``."""
        return replace(
            self,
            eigenvalues=self.eigenvalues.to(device),
            moments=self.moments.to(device),
            mode_integrals=self.mode_integrals.to(device),
            volume=self.volume.to(device),
            axes=self.axes.to(device),
            stiffness_coupling=None
            if self.stiffness_coupling is None
            else self.stiffness_coupling.to(device),
        )

    def rotated(self, rotation: torch.Tensor) -> Eigenbasis:
        """The basis of the shape rotated by ``rotation`` (3x3 proper rotation matrix [-])."""
        rot = as_real_tensor(rotation, "rotation", device=self.device)
        if rot.shape != (3, 3):
            raise ValueError("rotation must be a 3x3 matrix")
        eye = torch.eye(3, dtype=DTYPE, device=rot.device)
        if not torch.allclose(rot.detach() @ rot.detach().T, eye, atol=1e-9):
            raise ValueError("rotation must be orthogonal (R @ R.T == I)")
        return replace(self, axes=self.axes @ rot.T)

    def scaled(self, factor: torch.Tensor | float) -> Eigenbasis:
        """The basis of the shape scaled uniformly by ``factor`` [-] (differentiable).

        Eigenvalues scale as 1/factor^2, moments as factor, mode integrals as
        factor^(d/2) and the volume as factor^d.
        """
        f = as_real_tensor(factor, "factor", device=self.device)
        if f.ndim != 0 or float(f.detach()) <= 0:
            raise ValueError("factor must be a positive scalar")
        dim = self.dimension
        return replace(
            self,
            eigenvalues=self.eigenvalues / f**2,
            moments=self.moments * f,
            mode_integrals=self.mode_integrals * f ** (dim / 2),
            volume=self.volume * f**dim,
            source=None,
            discretisation=None
            if self.discretisation is None
            else self.discretisation.scaled(float(f.detach())),
            stiffness_coupling=None
            if self.stiffness_coupling is None
            else self.stiffness_coupling / f**2,
        )

    def truncated(self, max_eigenvalue: float) -> Eigenbasis:
        """Keep the modes with eigenvalue <= ``max_eigenvalue`` [1/m^2], never splitting a
        degenerate cluster (modes within ``CLUSTER_RTOL`` of the last one kept stay)."""
        count = cluster_safe_count(self.eigenvalues.detach(), max_eigenvalue)
        return replace(self.first_modes(count), isotropic=self.isotropic)

    def first_modes(self, count: int) -> Eigenbasis:
        """The first ``count`` modes (the caller is responsible for cluster boundaries; the
        result is not marked isotropic)."""
        if not 1 <= count <= self.num_modes:
            raise ValueError(f"count must be in [1, {self.num_modes}], got {count}")
        return replace(
            self,
            eigenvalues=self.eigenvalues[:count],
            moments=self.moments[:, :count, :count],
            mode_integrals=self.mode_integrals[:count],
            isotropic=False,
            source=None,
            stiffness_coupling=None
            if self.stiffness_coupling is None
            else self.stiffness_coupling[:count, :count],
        )

    def directional_moment(self, direction: torch.Tensor) -> torch.Tensor:
        """Moment matrix along lab-frame ``direction`` (..., 3) [-]: sum_k (axes n)_k Q_k."""
        local = direction.to(device=self.moments.device, dtype=self.moments.dtype) @ self.axes.T
        return torch.einsum("...k,kij->...ij", local, self.moments)


def cluster_safe_count(
    eigenvalues: torch.Tensor, max_eigenvalue: float, rtol: float = CLUSTER_RTOL
) -> int:
    """Number of leading eigenvalues <= ``max_eigenvalue``, extended so that no degenerate
    cluster (relative gap below ``rtol``) is cut in half."""
    lam = eigenvalues.detach().cpu()
    count = int((lam <= max_eigenvalue).sum())
    if count == 0:
        raise ValueError(
            f"max_eigenvalue {max_eigenvalue:g} [1/m^2] keeps no mode; it must be >= 0"
        )
    scale = max(float(lam[-1]), 1e-300)
    while count < lam.numel() and float(lam[count] - lam[count - 1]) <= rtol * scale:
        count += 1
    return count


@dataclass(frozen=True)
class ProductDomain:
    """A domain that is a product of restricted factors and unrestricted directions.

    For example an infinite cylinder is a disk (``Eigenbasis`` of dimension 2 whose axes
    span the cross-section) times free diffusion along the cylinder axis, and a finite
    cylinder is a disk times an interval.  The local axes of all factors and the free axes
    together must form an orthonormal frame of the 3-D laboratory space.

    Args:
        factors: restricted factors, each an ``Eigenbasis``.
        free_axes: (k, 3) laboratory unit vectors along which diffusion is free [-].
        free_extent: length (k = 1) or area (k = 2) assigned to the free directions when the
            domain's volume is needed for compartment weights [m^k]; 1 by default, so that
            the volume of an infinite cylinder is its cross-section area times 1 m.
    """

    factors: tuple[Eigenbasis, ...]
    free_axes: torch.Tensor
    free_extent: float = 1.0

    def __post_init__(self) -> None:
        factors = tuple(self.factors)
        if not all(isinstance(f, Eigenbasis) for f in factors):
            raise TypeError("factors must be Eigenbasis instances")
        device = factors[0].device if factors else None
        free_axes = as_real_tensor(self.free_axes, "free_axes", device=device).reshape(-1, 3)
        object.__setattr__(self, "factors", factors)
        object.__setattr__(self, "free_axes", free_axes)
        frame = torch.cat([f.axes.detach() for f in factors] + [free_axes.detach()], dim=0)
        if frame.shape[0] != 3:
            raise ValueError(
                f"the factors' dimensions plus the free axes must add up to 3, got {frame.shape[0]}"
            )
        if not torch.allclose(
            frame @ frame.T, torch.eye(3, dtype=DTYPE, device=frame.device), atol=1e-9
        ):
            raise ValueError("the factors' axes and the free axes must be mutually orthonormal")
        if not self.free_extent > 0:
            raise ValueError("free_extent must be positive [m^k]")

    @property
    def volume(self) -> torch.Tensor:
        """Product of the factors' measures times ``free_extent`` [m^3]."""
        volume = torch.ones((), dtype=DTYPE, device=self.free_axes.device)
        for factor in self.factors:
            volume = volume * factor.volume
        if self.free_axes.shape[0] > 0:
            volume = volume * self.free_extent
        return volume

    def rotated(self, rotation: torch.Tensor) -> ProductDomain:
        """The domain rotated by the 3x3 rotation matrix ``rotation`` [-]."""
        rot = as_real_tensor(rotation, "rotation", device=self.free_axes.device)
        return replace(
            self,
            factors=tuple(f.rotated(rot) for f in self.factors),
            free_axes=self.free_axes @ rot.T,
        )

    def to(self, device: torch.device | str) -> ProductDomain:
        return replace(
            self,
            factors=tuple(f.to(device) for f in self.factors),
            free_axes=self.free_axes.to(device),
        )


def as_product_domain(domain: Eigenbasis | ProductDomain) -> ProductDomain:
    """Wrap a 3-D ``Eigenbasis`` as a one-factor ``ProductDomain`` (others pass through)."""
    if isinstance(domain, ProductDomain):
        return domain
    if isinstance(domain, Eigenbasis):
        if domain.dimension != 3:
            raise ValueError(
                f"a {domain.dimension}-D eigenbasis is not a 3-D domain: combine it with free "
                "or bounded axes in a ProductDomain (e.g. mf_dmri.analytic.cylinder)"
            )
        return ProductDomain(factors=(domain,), free_axes=torch.zeros(0, 3, dtype=DTYPE))
    raise TypeError(f"expected an Eigenbasis or ProductDomain, got {type(domain).__name__}")
