"""Coupled sweep geometries: nested compartments that exchange through permeable membranes.

A :class:`~mf_dmri.geometry.CompartmentModel` (nested closed surfaces, from a generator
here or from a file read by ``mf_dmri.io.sweep_toml``) is tetrahedralised with labelled
compartments (``mesh_size`` [m], default ``length_scale / 2``), and the coupled
eigenproblem of :func:`mf_dmri.fem.permeable_eigenbasis` is solved up to ``length_scale``
[m] with the tissue values of one sweep point: per compartment diffusivity [m^2/s], T2
[s], spin density [-] and surface relaxivity [m/s] on its outer boundary, and one
permeability [m/s] for every membrane.  All of them are in the operator, so each point is
one eigen-solve (the plan makes them part of the geometry point).

Compartments are named outermost first (the order of ``CompartmentModel.outermost_first``:
nesting depth, then decreasing volume), like the ``[[compartment]]`` tables of
``mf-dmri simulate``'s ``[mesh]``, which uses the same two steps (:func:`mesh_nested` once,
:meth:`NestedMesh.basis` per distinct tissue point).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mf_dmri.coupled import CoupledBasis
from mf_dmri.fem import PermeableMesh, PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.geometry import (
    CompartmentModel,
    box,
    build_compartments,
    cylinder,
    sphere,
    tetrahedralize,
)
from mf_dmri.sweep.mesh_shapes import MESH_PARAMETERS
from mf_dmri.sweep.registry import GeometryBuilder, GeometryRegistry

#: Per-compartment tissue values of a coupled point, with their defaults (SI).
COMPARTMENT_DEFAULTS = {"t2": math.inf, "spin_density": 1.0, "surface_relaxivity": 0.0}


def coupled_parameters(tissue: Mapping[str, float], names: Sequence[str]) -> PermeableParameters:
    """The :class:`PermeableParameters` of one tissue point [SI] for the compartments
    ``names`` (in mesh label order); ``"<name>.<key>"`` overrides the shared ``key``."""
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
        self, tissue: Mapping[str, float], length_scale: float, label: str = ""
    ) -> CoupledBasis:
        """The coupled eigenbasis for the SI ``tissue`` values (see
        :func:`coupled_parameters`) up to ``length_scale`` [m]."""
        parameters = coupled_parameters(tissue, self.names)
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


def solve_nested(
    model: CompartmentModel,
    names: Sequence[str],
    parameters: Mapping[str, float],
    tissue: Mapping[str, float],
    label: str = "",
) -> CoupledBasis:
    """Mesh ``model`` and solve its coupled eigenbasis for one tissue point.

    Args:
        model: nested closed surfaces [m].
        names: compartment names, outermost first.
        parameters: ``length_scale`` [m] (mode cutoff) and optionally ``mesh_size`` [m].
        tissue: SI tissue values (see :func:`coupled_parameters`).
        label: free text stored in the basis.
    """
    coupled_parameters(tissue, names)  # refuse bad tissue keys before meshing
    nested = mesh_nested(model, names, mesh_size(parameters))
    return nested.basis(tissue, float(parameters["length_scale"]), label)


def mesh_size(parameters: Mapping[str, float]) -> float:
    """Target tetrahedron edge [m]: ``mesh_size``, default ``length_scale / 2``."""
    return float(parameters.get("mesh_size", float(parameters["length_scale"]) / 2))


def _subdivisions(options: Mapping[str, Any]) -> int:
    value = options.get("subdivisions", 3)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"option subdivisions must be an integer, got {value!r}")
    return value


def _sphere_in_sphere(parameters, options, tissue) -> CoupledBasis:
    inner, outer = float(parameters["inner_radius"]), float(parameters["outer_radius"])
    if not 0 < inner < outer:
        raise ValueError(
            f"sphere_in_sphere needs 0 < inner_radius < outer_radius, got {inner:g} m and "
            f"{outer:g} m"
        )
    level = _subdivisions(options)
    surfaces = [sphere(outer, subdivisions=level), sphere(inner, subdivisions=level)]
    model = build_compartments(surfaces)
    return solve_nested(model, ("extra", "intra"), parameters, tissue, label="sphere_in_sphere")


def _cylinder_in_box(parameters, options, tissue) -> CoupledBasis:
    radius, length = float(parameters["radius"]), float(parameters["length"])
    side = float(parameters["box_size"])
    if not (2 * radius < side and length < side):
        raise ValueError(
            f"cylinder_in_box needs the cylinder inside the box: 2 radius ({2 * radius:g} m) "
            f"and length ({length:g} m) below box_size ({side:g} m)"
        )
    segments = options.get("segments", 32)
    if not isinstance(segments, int) or isinstance(segments, bool):
        raise ValueError(f"option segments must be an integer, got {segments!r}")
    cube = box((side, side, side), edge_length=mesh_size(parameters))
    cube = cube.translated([-side / 2] * 3)
    model = build_compartments([cube, cylinder(radius, length, segments=segments)])
    return solve_nested(model, ("extra", "intra"), parameters, tissue, label="cylinder_in_box")


#: Coupled builders of generated geometries, keyed by shape name.
COUPLED_BUILDERS = (
    GeometryBuilder(
        "sphere_in_sphere",
        _sphere_in_sphere,
        {"inner_radius": "length", "outer_radius": "length", **MESH_PARAMETERS},
        required=("inner_radius", "outer_radius", "length_scale"),
        options={
            "subdivisions": "icosphere subdivision level of both spheres (integer, default 3)"
        },
        description="coupled: ball 'intra' inside a spherical shell 'extra' (permeable membrane)",
        coupled=True,
    ),
    GeometryBuilder(
        "cylinder_in_box",
        _cylinder_in_box,
        {"radius": "length", "length": "length", "box_size": "length", **MESH_PARAMETERS},
        required=("radius", "length", "box_size", "length_scale"),
        options={"segments": "vertices around the cylinder (integer, default 32)"},
        description="coupled: capped cylinder 'intra' along z, centred in a cube 'extra'",
        coupled=True,
    ),
)


def with_coupled_shapes(registry: GeometryRegistry) -> GeometryRegistry:
    """``registry`` plus the coupled generated shapes."""
    for builder in COUPLED_BUILDERS:
        registry = registry.with_builder(builder)
    return registry
