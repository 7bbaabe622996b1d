"""Tissue parameters of a permeable mesh and the decay operator as a linear combination.

``A(theta) = sum_p theta_p A_p`` with the unit matrices ``A_p`` of
:class:`~mf_dmri.fem.permeable.PermeableMesh` and the coefficient vector

    theta = (D_1..D_C, kappa_1..kappa_I, rho_c for compartments with an outer boundary,
             1/T2_1..1/T2_C)

([m^2/s], [m/s], [m/s], [1/s]).  The coefficients may be torch tensors with
``requires_grad``; the eigen-solve (:mod:`mf_dmri.fem.permeable_eigen`) differentiates
through them.  Spin density enters only the initial magnetisation ``m0 = sum_c s_c 1_c``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from mf_dmri._checks import DTYPE
from mf_dmri.fem.bloch_torrey import BlochTorreyOperator
from mf_dmri.fem.permeable import PermeableMesh
from mf_dmri.plausibility import Plausibility, check_plausible

Scalar = float | torch.Tensor


@dataclass(frozen=True)
class PermeableParameters:
    """Tissue parameters of a :class:`PermeableMesh` (per compartment in ascending label
    order, or one value for all; every value may be a torch scalar with requires_grad).

    Args:
        diffusivity: diffusion coefficient D_c [m^2/s], positive.
        permeability: kappa [m/s], non-negative: one value for every interface, or a
            mapping from label pairs (a, b) to values covering every interface of the mesh.
            Flux condition: ``D_a du_a/dn_a = kappa_ab (u_b - u_a)``.
        t2: transverse relaxation time T2_c [s], positive (``math.inf``: none).
        spin_density: relative spin density s_c [-], non-negative (initial magnetisation).
        surface_relaxivity: rho_c [m/s], non-negative, on the outer boundary of each
            compartment (Robin: ``D_c du/dn + rho_c u = 0``); interfaces carry none.
        plausibility: override of the range checks (``mf_dmri.plausibility``), keyword.
    """

    diffusivity: Scalar | tuple[Scalar, ...]
    permeability: Scalar | Mapping[tuple[int, int], Scalar] = 0.0
    t2: Scalar | tuple[Scalar, ...] = math.inf
    spin_density: Scalar | tuple[Scalar, ...] = 1.0
    surface_relaxivity: Scalar | tuple[Scalar, ...] = 0.0
    plausibility: Plausibility | None = field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        kappa = self.permeability
        kappas = list(kappa.values()) if isinstance(kappa, Mapping) else [kappa]
        for name, values, unit, strict in (
            ("diffusivity", _values(self.diffusivity), "m^2/s", True),
            ("permeability", kappas, "m/s", False),
            ("t2", _values(self.t2), "s", True),
            ("spin_density", _values(self.spin_density), "-", False),
            ("surface_relaxivity", _values(self.surface_relaxivity), "m/s", False),
        ):
            for value in values:
                number = float(_as_tensor(value, name, unit).detach())
                if number < 0 or (strict and number == 0):
                    relation = "positive" if strict else "non-negative"
                    raise ValueError(f"{name} must be {relation} [{unit}], got {number:g}")
            if name != "spin_density":
                numbers = [float(_as_tensor(v, name, unit).detach()) for v in values]
                check_plausible(name, numbers, name, self.plausibility)


def _values(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


@dataclass(frozen=True)
class ResolvedParameters:
    """Parameters checked against one mesh, as float64 tensors (C,) or (I,)."""

    diffusivity: torch.Tensor
    permeability: torch.Tensor
    relaxation_rate: torch.Tensor  # 1 / T2 [1/s]
    spin_density: torch.Tensor
    surface_relaxivity: torch.Tensor


def resolve(mesh: PermeableMesh, parameters: PermeableParameters) -> ResolvedParameters:
    """Check ``parameters`` against ``mesh`` (counts, signs, interface pairs)."""
    count = mesh.num_compartments
    diffusivity = _per_compartment(parameters.diffusivity, count, "diffusivity", "m^2/s")
    if bool((diffusivity.detach() <= 0).any()):
        raise ValueError("diffusivity must be positive [m^2/s]")
    t2 = _per_compartment(parameters.t2, count, "t2", "s")
    if bool((t2.detach() <= 0).any()):
        raise ValueError("t2 must be positive [s] (math.inf for no relaxation)")
    density = _per_compartment(parameters.spin_density, count, "spin_density", "-")
    relaxivity = _per_compartment(parameters.surface_relaxivity, count, "surface_relaxivity", "m/s")
    kappa = _per_interface(mesh, parameters.permeability)
    for name, value in (
        ("spin_density", density),
        ("surface_relaxivity", relaxivity),
        ("permeability", kappa),
    ):
        if bool((value.detach() < 0).any()):
            raise ValueError(f"{name} must be non-negative")
    return ResolvedParameters(diffusivity, kappa, 1.0 / t2, density, relaxivity)


def _as_tensor(value: Scalar, name: str, unit: str) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=DTYPE)
    if tensor.ndim != 0:
        raise ValueError(f"each {name} must be a scalar [{unit}]")
    if bool(torch.isnan(tensor.detach())):
        raise ValueError(f"{name} is NaN; pass a number [{unit}]")
    return tensor


def _per_compartment(value, count: int, name: str, unit: str) -> torch.Tensor:
    if isinstance(value, (tuple, list)):
        if len(value) != count:
            raise ValueError(
                f"{name} needs one value or one per compartment ({count}, in ascending label "
                f"order), got {len(value)}"
            )
        return torch.stack([_as_tensor(v, name, unit) for v in value])
    return _as_tensor(value, name, unit).expand(count)


def _per_interface(mesh: PermeableMesh, value) -> torch.Tensor:
    pairs = mesh.interfaces
    if not isinstance(value, Mapping):
        return _as_tensor(value, "permeability", "m/s").expand(len(pairs))
    given = {}
    for key, kappa in value.items():
        a, b = sorted(int(x) for x in key)
        if (a, b) not in pairs:
            raise ValueError(
                f"no interface between compartments {key} in this mesh; its interfaces are "
                f"{list(pairs)}"
            )
        given[(a, b)] = _as_tensor(kappa, "permeability", "m/s")
    missing = [p for p in pairs if p not in given]
    if missing:
        raise ValueError(f"permeability missing for interfaces {missing} [m/s]")
    if not pairs:
        return torch.zeros(0, dtype=DTYPE)
    return torch.stack([given[p] for p in pairs])


def decay_terms(
    mesh: PermeableMesh, resolved: ResolvedParameters
) -> tuple[torch.Tensor, list[sp.csr_matrix]]:
    """The coefficients theta (P,) and unit matrices A_p with A = sum_p theta_p A_p."""
    count = mesh.num_compartments
    coefficients = [resolved.diffusivity[c] for c in range(count)]
    matrices = [mesh.stiffness(c) for c in range(count)]
    coefficients += [resolved.permeability[i] for i in range(len(mesh.interfaces))]
    matrices += list(mesh.interface_matrices)
    for c, boundary in enumerate(mesh.boundary_matrices):
        if boundary is not None:
            coefficients.append(resolved.surface_relaxivity[c])
            matrices.append(boundary)
    coefficients += [resolved.relaxation_rate[c] for c in range(count)]
    matrices += [mesh.compartment_mass(c) for c in range(count)]
    return torch.stack(coefficients), matrices


def combine(theta: np.ndarray, matrices: list[sp.csr_matrix]) -> sp.csr_matrix:
    """sum_p theta_p A_p as CSR (symmetrised)."""
    total = sum(float(t) * a for t, a in zip(theta, matrices, strict=True))
    return ((total + total.T) * 0.5).tocsr()


def exact_null_modes(mesh: PermeableMesh, resolved: ResolvedParameters) -> np.ndarray:
    """(N, z) M-orthonormal exact null vectors of A: the indicator of every piece connected
    through elements and interfaces with kappa > 0 on which nothing relaxes (no T2, no
    surface relaxivity on its outer boundary); (N, 0) when everything relaxes."""
    graph = mesh.mass.copy()
    kappa = resolved.permeability.detach().cpu().numpy()
    for value, matrix in zip(kappa, mesh.interface_matrices, strict=True):
        if value > 0:
            graph = graph + abs(matrix)
    count, piece = connected_components(graph, directed=False)
    owner = mesh.compartment_of_dofs
    rate = resolved.relaxation_rate.detach().cpu().numpy()
    rho = resolved.surface_relaxivity.detach().cpu().numpy()
    relaxing = (rate > 0) | ((rho > 0) & np.array([b is not None for b in mesh.boundary_matrices]))
    mass = mesh.mass
    columns = []
    for index in range(count):
        members = piece == index
        if relaxing[np.unique(owner[members])].any():
            continue
        column = members.astype(float)
        columns.append(column / math.sqrt(column @ (mass @ column)))
    if not columns:
        return np.zeros((mesh.num_dofs, 0))
    return np.stack(columns, axis=1)


def permeable_operator(
    mesh: PermeableMesh, parameters: PermeableParameters, *, axes: np.ndarray | None = None
) -> BlochTorreyOperator:
    """The :class:`BlochTorreyOperator` of the permeable, relaxing system (values only, no
    autograd): ``A = sum_p theta_p A_p``, ``m0 = sum_c s_c 1_c``, readout ones.

    Args:
        mesh: the doubled-node unit matrices (:func:`mf_dmri.fem.permeable.permeable_mesh`).
        parameters: tissue parameters (see :class:`PermeableParameters` for units).
        axes: (d, 3) laboratory frame of the mesh coordinates [-]; identity rows by default.
    """
    resolved = resolve(mesh, parameters)
    theta, matrices = decay_terms(mesh, resolved)
    density = resolved.spin_density.detach().cpu().numpy()
    return BlochTorreyOperator(
        mass=mesh.mass,
        decay=combine(theta.detach().cpu().numpy(), matrices),
        moments=mesh.moments,
        initial=density[mesh.compartment_of_dofs],
        readout=np.ones(mesh.num_dofs),
        axes=np.eye(mesh.dimension, 3) if axes is None else np.asarray(axes, dtype=float),
        compartment=np.asarray(mesh.labels)[mesh.compartment_of_dofs],
        mesh_size=mesh.mesh_size,
    )
