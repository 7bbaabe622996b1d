"""Mesh-based sweep geometries: a surface (from a generator of ``mf_dmri.geometry`` or a
file read by ``mf_dmri.io``) -> tetrahedra -> finite-element eigenbasis (``mf_dmri.fem``).

Every builder takes ``length_scale`` [m], the shortest wavelength kept in the eigenbasis
(cutoff (2 pi / length_scale)^2), and optionally ``mesh_size`` [m], the target tetrahedron
edge (default ``length_scale / 2``).  Both force a new solve, like every geometry
parameter.  A surface with several bodies gives one eigenbasis with one zero mode per
body, returned as one compartment ('intra'): its bodies share the tissue values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mf_dmri.eigenbasis import ProductDomain, as_product_domain
from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.geometry import (
    SurfaceMesh,
    beaded_axon,
    capsule,
    ellipsoid,
    sphere,
    tetrahedralize,
    torus,
    undulating_axon,
)
from mf_dmri.sweep.registry import GeometryBuilder, GeometryRegistry

#: Parameters every mesh builder accepts (see the module docstring).
MESH_PARAMETERS = {"length_scale": "length", "mesh_size": "length"}


def solve_surface(
    surface: SurfaceMesh, parameters: Mapping[str, float], label: str = ""
) -> dict[str, ProductDomain]:
    """Tetrahedralise ``surface`` and solve its eigenbasis up to ``length_scale``."""
    volume = tetrahedralize(surface, length_scale=mesh_size(parameters))
    basis = mesh_eigenbasis(
        volume.nodes,
        volume.elements,
        element_labels=volume.labels,
        length_scale=float(parameters["length_scale"]),
        label=label,
    )
    return {"intra": as_product_domain(basis)}


def mesh_size(parameters: Mapping[str, float]) -> float:
    """Target tetrahedron edge [m]: ``mesh_size``, default ``length_scale / 2``."""
    return float(parameters.get("mesh_size", float(parameters["length_scale"]) / 2))


def _generator_builder(
    name: str,
    make: Callable[[Mapping[str, float], Mapping[str, Any]], SurfaceMesh],
    parameters: dict[str, str],
    options: dict[str, str],
    description: str,
) -> GeometryBuilder:
    def build(values, chosen_options, plausibility):
        # no range check here: Compartment checks the mesh's extent with ``plausibility``
        return solve_surface(make(values, chosen_options), values, label=name)

    return GeometryBuilder(
        name,
        build,
        {**parameters, **MESH_PARAMETERS},
        required=(*parameters, "length_scale"),
        options=options,
        description=description,
    )


def _int_option(options, name, default):
    value = options.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"option {name} must be an integer, got {value!r}")
    return value


_SEGMENTS = {
    "segments": "vertices around the tube (integer, default 32: coarser than "
    "geometry.cylinder's 80, for speed)"
}
_SUBDIVISIONS = {
    "subdivisions": "icosphere subdivision level (integer, default 3: coarser than "
    "geometry.sphere's 4, for speed)"
}

#: Builders of the mesh generators, keyed by shape name.
GENERATOR_BUILDERS = (
    _generator_builder(
        "mesh_sphere",
        lambda p, o: sphere(p["radius"], subdivisions=_int_option(o, "subdivisions", 3)),
        {"radius": "length"},
        _SUBDIVISIONS,
        "meshed sphere (cross-check of the analytic one)",
    ),
    _generator_builder(
        "ellipsoid",
        lambda p, o: ellipsoid(
            (p["semi_axis_x"], p["semi_axis_y"], p["semi_axis_z"]),
            subdivisions=_int_option(o, "subdivisions", 3),
        ),
        {"semi_axis_x": "length", "semi_axis_y": "length", "semi_axis_z": "length"},
        _SUBDIVISIONS,
        "axis-aligned ellipsoid",
    ),
    _generator_builder(
        "capsule",
        lambda p, o: capsule(p["radius"], p["length"], segments=_int_option(o, "segments", 32)),
        {"radius": "length", "length": "length"},
        _SEGMENTS,
        "cylinder with hemispherical caps along z",
    ),
    _generator_builder(
        "torus",
        lambda p, o: torus(
            p["major_radius"], p["minor_radius"], segments=_int_option(o, "segments", 32)
        ),
        {"major_radius": "length", "minor_radius": "length"},
        _SEGMENTS,
        "torus around z",
    ),
    _generator_builder(
        "beaded_axon",
        lambda p, o: beaded_axon(
            p["radius"],
            p["length"],
            p["bead_amplitude"],
            p["bead_wavelength"],
            segments=_int_option(o, "segments", 32),
        ),
        {
            "radius": "length",
            "length": "length",
            "bead_amplitude": "none",
            "bead_wavelength": "length",
        },
        _SEGMENTS,
        "axon along z with sinusoidal radius (bead_amplitude relative, in [0, 1))",
    ),
    _generator_builder(
        "undulating_axon",
        lambda p, o: undulating_axon(
            p["radius"],
            p["length"],
            p["undulation_amplitude"],
            p["undulation_wavelength"],
            segments=_int_option(o, "segments", 32),
        ),
        {
            "radius": "length",
            "length": "length",
            "undulation_amplitude": "length",
            "undulation_wavelength": "length",
        },
        _SEGMENTS,
        "constant-radius axon around a sinusoidal centreline",
    ),
)


def with_mesh_generators(registry: GeometryRegistry) -> GeometryRegistry:
    """``registry`` plus the mesh generator shapes."""
    for builder in GENERATOR_BUILDERS:
        registry = registry.with_builder(builder)
    return registry
