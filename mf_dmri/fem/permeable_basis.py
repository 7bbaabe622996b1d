"""The coupled matrix-formalism basis of a permeable, relaxing mesh (differentiable).

Cutoff convention: every mode with rate ``lambda <= max_rate`` [1/s] is kept (plus the rest
of a degenerate cluster that straddles it); a ``length_scale`` ell [m] means
``max_rate = max_c (D_c (2 pi / ell)^2 + 1/T2_c)``, i.e. every mode whose diffusive
wavelength in the fastest compartment is at least ell.  ``num_modes`` keeps the lowest
modes instead (extended to close the last cluster).  Surface relaxivity and exchange raise
the rates, so at strong relaxivity prefer an explicit ``max_rate``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.coupled import CoupledBasis
from mf_dmri.eigenbasis import CLUSTER_RTOL
from mf_dmri.fem.permeable import PermeableMesh
from mf_dmri.fem.permeable_eigen import CoupledEigenFunction, CoupledSpec
from mf_dmri.fem.permeable_parameters import (
    PermeableParameters,
    ResolvedParameters,
    decay_terms,
    exact_null_modes,
    resolve,
)


def permeable_eigenbasis(
    mesh: PermeableMesh,
    parameters: PermeableParameters,
    *,
    max_rate: float | None = None,
    length_scale: float | None = None,
    num_modes: int | None = None,
    cluster_rtol: float = CLUSTER_RTOL,
    axes=None,
    label: str = "",
) -> CoupledBasis:
    """Coupled eigen-data of the permeable/relaxing system, differentiable w.r.t. every
    tensor in ``parameters`` (diffusivity, permeability, T2, spin density, relaxivity).

    Args:
        mesh: doubled-node unit matrices (:func:`mf_dmri.fem.permeable.permeable_mesh`).
        parameters: tissue parameters (units in :class:`PermeableParameters`).
        max_rate: keep every mode with rate <= max_rate [1/s] (cluster-complete).
        length_scale: shortest diffusive wavelength kept ell [m] (see the module docstring).
        num_modes: keep the lowest num_modes modes (extended to close the last cluster).
        cluster_rtol: relative gap [-] under which rates count as one cluster.
        axes: (d, 3) laboratory frame of the mesh coordinates [-]; identity rows by default.
        label: free text stored in the basis.

    Returns:
        A :class:`~mf_dmri.coupled.CoupledBasis` for :func:`mf_dmri.signal.signal`.
    """
    resolved = resolve(mesh, parameters)
    cutoff = _cutoff(resolved, max_rate, length_scale, num_modes)
    theta, matrices = decay_terms(mesh, resolved)
    indicators = np.stack([mesh.indicator(c) for c in range(mesh.num_compartments)], axis=1)
    diffusivity = resolved.diffusivity.detach().cpu().numpy()
    dim = mesh.dimension
    spec = CoupledSpec(
        matrices=tuple(matrices),
        mass=mesh.mass,
        moments=mesh.moments,
        indicators=indicators,
        null_modes=lambda _: exact_null_modes(mesh, resolved),
        num_modes=num_modes,
        max_rate=cutoff,
        weyl_scale=float(sum(v / d ** (dim / 2) for v, d in zip(mesh.volumes, diffusivity))),
        cluster_rtol=cluster_rtol,
    )
    rates, coupling, moments, integrals = CoupledEigenFunction.apply(theta, spec)
    options = {"cluster_rtol": cluster_rtol, "axes": axes, "label": label}
    source = PermeableSource(mesh, parameters, _compartments(mesh, resolved), options)
    volumes = torch.tensor(mesh.volumes, dtype=DTYPE, device=integrals.device)
    frame = np.eye(dim, 3) if axes is None else np.asarray(axes, dtype=float)
    return CoupledBasis(
        rates=rates,
        moments=moments,
        initial=resolved.spin_density @ integrals,
        readout=integrals.sum(0),
        reference=(resolved.spin_density * volumes).sum(),
        axes=torch.as_tensor(frame, dtype=DTYPE, device=integrals.device),
        coupling=coupling,
        label=label,
        source=source,
    )


@dataclass(frozen=True)
class PermeableSource:
    """Rebuilds :func:`permeable_eigenbasis` at another ``max_rate`` [1/s] (a
    :class:`~mf_dmri.coupled.CoupledSource`); ``compartments``: (diffusivity [m^2/s],
    volume-equivalent radius [m], 1/T2 [1/s]) per compartment."""

    mesh: PermeableMesh
    parameters: PermeableParameters
    compartments: tuple[tuple[float, float, float], ...]
    options: dict = field(compare=False)

    def basis(self, max_rate: float) -> CoupledBasis:
        """Every mode with rate <= ``max_rate`` [1/s]; every mode of the mesh when the rate
        lies beyond its spectrum (the semi-discrete system is then complete)."""
        try:
            return permeable_eigenbasis(
                self.mesh, self.parameters, max_rate=max_rate, **self.options
            )
        except ValueError as exc:
            if "degrees of freedom" not in str(exc):
                raise
        count = self.mesh.mass.shape[0] - 1
        return permeable_eigenbasis(self.mesh, self.parameters, num_modes=count, **self.options)


def _compartments(mesh: PermeableMesh, resolved: ResolvedParameters):
    """(diffusivity, radius of the same volume (3-D) or area (2-D), 1/T2) per compartment."""
    dim = mesh.dimension
    unit = 4.0 * math.pi / 3.0 if dim == 3 else math.pi
    return tuple(
        (float(d), (float(v) / unit) ** (1.0 / dim), float(r))
        for d, v, r in zip(
            resolved.diffusivity.detach(), mesh.volumes, resolved.relaxation_rate.detach()
        )
    )


def _cutoff(
    resolved: ResolvedParameters,
    max_rate: float | None,
    length_scale: float | None,
    num_modes: int | None,
) -> float | None:
    given = sum(x is not None for x in (max_rate, length_scale, num_modes))
    if given != 1:
        raise ValueError("pass exactly one of max_rate [1/s], length_scale [m] or num_modes")
    if num_modes is not None:
        if int(num_modes) < 1:
            raise ValueError(f"num_modes must be >= 1, got {num_modes}")
        return None
    if max_rate is not None:
        if not (math.isfinite(max_rate) and max_rate > 0):
            raise ValueError(f"max_rate must be a positive rate [1/s], got {max_rate}")
        return float(max_rate)
    if not (math.isfinite(length_scale) and length_scale > 0):
        raise ValueError(f"length_scale must be a positive length [m], got {length_scale}")
    wave = (2 * math.pi / length_scale) ** 2
    rates = resolved.diffusivity.detach() * wave + resolved.relaxation_rate.detach()
    return float(rates.max())
