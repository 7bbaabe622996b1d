"""Eigen-data of a coupled (permeable and/or relaxing) Bloch-Torrey system.

For the semi-discrete system ``M dm/dt = -(A + i gamma g(t).J) m``, ``m(0) = m0``, signal
``r^T M m`` (see :mod:`mf_dmri.fem.bloch_torrey`), the generalized eigenpairs
``A phi_i = lambda_i M phi_i`` (``Phi^T M Phi = I``, ``lambda_i`` rates [1/s] that already
contain diffusion, exchange, surface and bulk relaxation) reduce it to

    dc/dt = -(diag(lambda) + i gamma g(t).S) c,   c(0) = Phi^T M m0,
    signal = (Phi^T M r)^T c,   S_k = Phi^T J_k Phi.

Unlike :class:`~mf_dmri.eigenbasis.Eigenbasis` (Neumann modes of the Laplacian, scaled by
one diffusivity), the rates are not proportional to one diffusivity, and the initial and
readout vectors differ in general (spin densities differ between compartments).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import torch

from mf_dmri._checks import as_real_tensor
from mf_dmri.eigenbasis import cluster_safe_count


class CoupledSource(Protocol):
    """How a coupled basis is rebuilt at another cutoff (the error bar of
    :func:`mf_dmri.signal.signal_with_error` uses it).  ``compartments``: per compartment
    (diffusivity [m^2/s], extent [m] (the radius of the same volume), bulk relaxation
    rate [1/s]), for the a-priori cutoff of :mod:`mf_dmri.signal.cutoff`."""

    @property
    def compartments(self) -> tuple[tuple[float, float, float], ...]: ...

    def basis(self, max_rate: float) -> CoupledBasis:
        """The basis with every mode of rate <= ``max_rate`` [1/s] (cluster-complete)."""
        ...


@dataclass(frozen=True)
class CoupledBasis:
    """Truncated eigen-data of a coupled system (see the module docstring).

    Args:
        rates: (L,) eigenvalues lambda_i of ``A phi = lambda M phi`` [1/s], ascending.
        moments: (d, L, L) symmetric first moments ``Phi^T J_k Phi`` [m], local coordinates.
        initial: (L,) initial coefficients ``Phi^T M m0`` [m^(d/2)].
        readout: (L,) readout coefficients ``Phi^T M r`` [m^(d/2)].
        reference: ``r^T M m0`` [m^d], the signal without weighting or relaxation.
        axes: (d, 3) laboratory-frame unit vectors of the local coordinates [-].
        coupling: optional (L, L) [1/s], zero in value: the within-cluster part of the
            first variation of ``Phi^T A Phi`` (docs/eigen_derivatives.md, section 4),
            added to ``diag(rates)`` so that gradients are exact at degenerate spectra.
        label: free text.
        source: optional :class:`CoupledSource` that rebuilds the system at another cutoff
            (set by :func:`mf_dmri.fem.permeable_eigenbasis`).
    """

    rates: torch.Tensor
    moments: torch.Tensor
    initial: torch.Tensor
    readout: torch.Tensor
    reference: torch.Tensor
    axes: torch.Tensor
    coupling: torch.Tensor | None = field(default=None, compare=False)
    label: str = field(default="", compare=False)
    source: CoupledSource | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        rates = as_real_tensor(self.rates, "rates")
        device = rates.device
        for name in ("moments", "initial", "readout", "reference", "axes"):
            object.__setattr__(self, name, as_real_tensor(getattr(self, name), name, device=device))
        object.__setattr__(self, "rates", rates)
        count = rates.numel()
        if rates.ndim != 1 or count == 0:
            raise ValueError("rates must be a non-empty 1-D array [1/s]")
        if self.moments.ndim != 3 or self.moments.shape[1:] != (count, count):
            raise ValueError(f"moments must have shape (d, {count}, {count}) [m]")
        if self.moments.shape[0] not in (2, 3):
            raise ValueError("a coupled basis comes from a 2-D or 3-D mesh (d = 2 or 3)")
        if self.initial.shape != (count,) or self.readout.shape != (count,):
            raise ValueError(f"initial and readout must have shape ({count},)")
        if self.reference.ndim != 0 or float(self.reference.detach()) <= 0:
            raise ValueError("reference r^T M m0 must be a positive scalar [m^d]")
        if self.axes.shape != (self.dimension, 3):
            raise ValueError(f"axes must have shape ({self.dimension}, 3)")
        if self.coupling is not None and self.coupling.shape != (count, count):
            raise ValueError(f"coupling must have shape ({count}, {count}) [1/s]")
        lam = rates.detach()
        if bool((lam[1:] < lam[:-1]).any()):
            raise ValueError("rates must be sorted in ascending order")

    @property
    def dimension(self) -> int:
        return int(self.moments.shape[0])

    @property
    def num_modes(self) -> int:
        return int(self.rates.numel())

    @property
    def device(self) -> torch.device:
        return self.rates.device

    @property
    def max_rate(self) -> float:
        """The largest rate kept [1/s] (the cutoff of the basis)."""
        return float(self.rates.detach()[-1])

    def truncated(self, max_rate: float) -> CoupledBasis:
        """Keep the modes with rate <= ``max_rate`` [1/s], never splitting a degenerate
        cluster (the modes are eigenpairs of one system, so the lower ones do not depend on
        how many are kept)."""
        count = cluster_safe_count(self.rates.detach(), max_rate)
        coupling = None if self.coupling is None else self.coupling[:count, :count]
        return replace(
            self,
            rates=self.rates[:count],
            moments=self.moments[:, :count, :count],
            initial=self.initial[:count],
            readout=self.readout[:count],
            coupling=coupling,
        )

    def to(self, device: torch.device | str) -> CoupledBasis:
        """The same basis with every tensor on ``device``."""
        coupling = None if self.coupling is None else self.coupling.to(device)
        return replace(
            self,
            rates=self.rates.to(device),
            moments=self.moments.to(device),
            initial=self.initial.to(device),
            readout=self.readout.to(device),
            reference=self.reference.to(device),
            axes=self.axes.to(device),
            coupling=coupling,
        )

    def rotated(self, rotation: torch.Tensor) -> CoupledBasis:
        """The system rotated by the 3x3 rotation matrix ``rotation`` [-]."""
        rot = as_real_tensor(rotation, "rotation", device=self.device)
        if rot.shape != (3, 3):
            raise ValueError("rotation must be a 3x3 matrix")
        return replace(self, axes=self.axes @ rot.T)
