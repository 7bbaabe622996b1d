"""Nested compartments meshed once, solved for any tissue values (a coupled geometry).

:func:`mesh_nested` tetrahedralises a :class:`~mf_dmri.geometry.CompartmentModel` with
one label per compartment; :meth:`NestedMesh.basis` solves the coupled eigenproblem of
:func:`mf_dmri.fem.permeable_eigenbasis` for the SI tissue values of one point: per
compartment diffusivity [m^2/s], T2 [s], spin density [-] and surface relaxivity [m/s] on
its outer boundary, and one permeability [m/s] for every membrane (keys as in a sweep's
tissue table: ``"diffusivity"`` shared, ``"intra.diffusivity"`` for one compartment).
Compartments are named outermost first (``CompartmentModel.outermost_first``: nesting
depth, then decreasing volume).  Used by the sweep's coupled shapes
(:mod:`mf_dmri.sweep.coupled_shapes`) and by ``mf-dmri simulate``'s ``[mesh]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mf_dmri.coupled import CoupledBasis
from mf_dmri.fem import PermeableMesh, PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.geometry import CompartmentModel, tetrahedralize
from mf_dmri.plausibility import Plausibility

#: Per-compartment tissue values of a coupled point, with their defaults (SI).
COMPARTMENT_DEFAULTS = {"t2": math.inf, "spin_density": 1.0, "surface_relaxivity": 0.0}


def coupled_parameters(
    tissue: Mapping[str, float], names: Sequence[str], plausibility: Plausibility | None = None
) -> PermeableParameters:
    """The :class:`PermeableParameters` of one tissue point [SI] for the compartments
    ``names`` (in mesh label order); ``"<name>.<key>"`` overrides the shared ``key``;
    ``plausibility``: the override of their range checks."""
    unknown = sorted({k.rsplit(".", 1)[0] for k in tissue if "." in k} - set(names))
    if unknown:
        raise ValueError(
            f"the tissue values name compartments {unknown} that the geometry lacks; its "
            f"compartments are {sorted(names)}"
        )

    def values(key: str, default: float | None) -> tuple[float, ...]:
        result = tuple(tissue.get(f"{n}.{key}", tissue.get(key, default)) for n in names)
        missing = [n for n, v in zip(names, result) if v is None]
        if missing:
            raise ValueError(f"no {key} for compartments {missing}: give one (no default)")
        return result

    return PermeableParameters(
        diffusivity=values("diffusivity", None),
        permeability=tissue.get("permeability", 0.0),
        **{key: values(key, default) for key, default in COMPARTMENT_DEFAULTS.items()},
        plausibility=plausibility,
    )


@dataclass(frozen=True)
class NestedMesh:
    """A labelled tetrahedral mesh of nested compartments, ready for any tissue values.

    Args:
        mesh: doubled-node unit matrices (:func:`mf_dmri.fem.permeable_mesh`).
        names: compartment names in mesh label order.
    """

    mesh: PermeableMesh
    names: tuple[str, ...]

    def basis(
        self,
        tissue: Mapping[str, float],
        length_scale: float,
        label: str = "",
        plausibility: Plausibility | None = None,
    ) -> CoupledBasis:
        """The coupled eigenbasis for the SI ``tissue`` values (see
        :func:`coupled_parameters`, checked with ``plausibility``) up to ``length_scale``
        [m]."""
        parameters = coupled_parameters(tissue, self.names, plausibility)
        return permeable_eigenbasis(self.mesh, parameters, length_scale=length_scale, label=label)


def mesh_nested(model: CompartmentModel, names: Sequence[str], edge: float) -> NestedMesh:
    """Tetrahedralise ``model`` (target edge ``edge`` [m]) with one label per compartment;
    ``names`` are the compartments' names, outermost first."""
    names = tuple(names)
    if len(names) != model.n_compartments or len(set(names)) != len(names):
        raise ValueError(
            f"the geometry has {model.n_compartments} nested compartments but "
            f"{len(names)} distinct names were given ({list(names)}): give one name per "
            "compartment, outermost first"
        )
    order = model.outermost_first()
    by_label = tuple(names[order.index(label)] for label in range(model.n_compartments))
    return NestedMesh(permeable_mesh(tetrahedralize(model, length_scale=edge)), by_label)
