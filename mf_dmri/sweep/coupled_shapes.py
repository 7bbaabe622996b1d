"""Coupled sweep geometries: nested compartments that exchange through permeable membranes.

A coupled builder turns its parameters into a :class:`~mf_dmri.sweep.nested.NestedMesh`
(nested closed surfaces, from a generator here or from a file read by
``mf_dmri.io.sweep_toml``, tetrahedralised with labelled compartments, target edge
``mesh_size`` [m], default ``length_scale / 2``); the engine then solves its coupled
eigenproblem up to ``length_scale`` [m] with the tissue values of each point
(:meth:`NestedMesh.basis`).  The tissue values are in the operator, so each point is one
eigen-solve (the plan makes them part of the geometry point); consecutive points of one
mesh share it in a local run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mf_dmri.geometry import box, build_compartments, cylinder, sphere
from mf_dmri.sweep.mesh_shapes import MESH_PARAMETERS, mesh_size
from mf_dmri.sweep.nested import NestedMesh, mesh_nested
from mf_dmri.sweep.registry import GeometryBuilder, GeometryRegistry


def _subdivisions(options: Mapping[str, Any]) -> int:
    value = options.get("subdivisions", 3)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"option subdivisions must be an integer, got {value!r}")
    return value


def _sphere_in_sphere(parameters, options, plausibility) -> NestedMesh:
    """(``plausibility`` checks the tissue values, in ``NestedMesh.basis``.)"""
    inner, outer = float(parameters["inner_radius"]), float(parameters["outer_radius"])
    if not 0 < inner < outer:
        raise ValueError(
            f"sphere_in_sphere needs 0 < inner_radius < outer_radius, got {inner:g} m and "
            f"{outer:g} m"
        )
    level = _subdivisions(options)
    surfaces = [sphere(outer, subdivisions=level), sphere(inner, subdivisions=level)]
    return mesh_nested(build_compartments(surfaces), ("extra", "intra"), mesh_size(parameters))


def _cylinder_in_box(parameters, options, plausibility) -> NestedMesh:
    """(``plausibility`` checks the tissue values, in ``NestedMesh.basis``.)"""
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
    surfaces = [cube.translated([-side / 2] * 3), cylinder(radius, length, segments=segments)]
    return mesh_nested(build_compartments(surfaces), ("extra", "intra"), mesh_size(parameters))


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
