"""Tetrahedral mesh of a neuron skeleton built as exact CSG (OpenCASCADE via netgen.occ).

The triangulated boolean union of :func:`mf_dmri.geometry.neuron_surface` has sliver
triangles at the soma/neurite junctions on which netgen fails (docs/meshing.md).  Here the
union of the soma ball and the capsules (cylinder + end balls) is built as a solid by
OpenCASCADE (netgen_occt, LGPL-2.1) and netgen meshes that geometry directly, so the
surface triangles at the junctions are made by netgen itself, with its quality control.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from mf_dmri.geometry.errors import MesherError, VolumeFidelityError
from mf_dmri.geometry.native_output import native_output_to_log
from mf_dmri.geometry.neuron import NeuronSkeleton
from mf_dmri.geometry.quality import dihedral_angles, radius_ratios, tet_volumes
from mf_dmri.geometry.tetra import TetQuality, VolumeMesh

logger = logging.getLogger(__name__)


def _solid(skeleton: NeuronSkeleton, unit: float):
    from netgen.occ import Cylinder, Pnt, Sphere, Vec

    solid = Sphere(Pnt(0, 0, 0), skeleton.soma_radius / unit)
    for start, end, radius in zip(skeleton.starts, skeleton.ends, skeleton.radii, strict=True):
        s, e, r = start / unit, end / unit, radius / unit
        axis = e - s
        length = float(np.linalg.norm(axis))
        solid = solid + Sphere(Pnt(*s), r) + Sphere(Pnt(*e), r)
        if length > 0:
            solid = solid + Cylinder(Pnt(*s), Vec(*(axis / length)), r, length)
    return solid


def neuron_volume_mesh(
    skeleton: NeuronSkeleton,
    *,
    max_edge: float,
    curvature_safety: float = 3.0,
    volume_tolerance: float = 0.02,
) -> VolumeMesh:
    """Tetrahedra filling the union of the skeleton's soma and capsules.

    skeleton: the neuron skeleton [m].  max_edge: target largest edge [m].
    curvature_safety: netgen's ``curvaturesafety`` [1], about the number of elements per
    radius of curvature (3 instead of netgen's 2: on the seed-1 neuron at max_edge 0.7 um
    it gave min dihedral 9.6 deg and a 1.1 % volume deficit, against 0.1 deg and 1.9 %).
    volume_tolerance: largest accepted relative difference between
    the tetrahedral volume and the exact CSG volume [1] (VolumeFidelityError beyond).
    The quality's ``surface_volume`` is the exact volume of the CSG union [m^3].
    """
    try:
        from netgen.occ import OCCGeometry
    except ImportError as exc:
        raise MesherError(
            f"netgen.occ is not available ({exc}): pip install netgen-mesher"
        ) from exc
    if not max_edge > 0:
        raise ValueError(f"max_edge must be a positive length [m], got {max_edge!r}")
    if not curvature_safety > 0:
        raise ValueError(f"curvature_safety must be positive [1], got {curvature_safety!r}")
    unit = skeleton.soma_radius  # scaled to order one for OpenCASCADE's tolerances
    start = time.perf_counter()
    solid = _solid(skeleton, unit)
    with native_output_to_log(logger):  # netgen prints warnings on descriptor 1
        mesh = OCCGeometry(solid).GenerateMesh(
            maxh=float(max_edge) / unit, curvaturesafety=float(curvature_safety)
        )
    seconds = time.perf_counter() - start
    nodes = np.asarray(mesh.Coordinates(), dtype=np.float64) * unit
    elements = mesh.Elements3D().NumPy()["nodes"].astype(np.int64) - 1
    if len(elements) == 0:
        raise MesherError("netgen produced no tetrahedra for the neuron geometry")
    negative = tet_volumes(nodes, elements) < 0
    elements[negative] = elements[negative][:, [0, 2, 1, 3]]
    exact = float(solid.mass) * unit**3
    quality = _quality(nodes, elements, exact, seconds)
    if quality.volume_error > volume_tolerance:
        raise VolumeFidelityError(
            f"the neuron mesh volume differs from the exact union volume by "
            f"{100 * quality.volume_error:.2f} % (> {100 * volume_tolerance:g} %); use a "
            "smaller max_edge"
        )
    return VolumeMesh(nodes, elements, np.zeros(len(elements), dtype=np.int64), quality)


def _quality(nodes, elements, exact_volume: float, seconds: float) -> TetQuality:
    angles = np.degrees(dihedral_angles(nodes, elements))
    ratios = radius_ratios(nodes, elements)
    volume = float(tet_volumes(nodes, elements).sum())
    return TetQuality(
        method="netgen-occ",
        n_nodes=len(nodes),
        n_elements=len(elements),
        min_dihedral=float(angles.min()),
        max_dihedral=float(angles.max()),
        min_radius_ratio=float(ratios.min()),
        mean_radius_ratio=float(ratios.mean()),
        volume=volume,
        surface_volume=exact_volume,
        boundary_area=float("nan"),
        surface_area=float("nan"),
        compartment_volumes=(volume,),
        compartment_surface_volumes=(exact_volume,),
        seconds=seconds,
    )
