"""Keeping the volume mesh usable while a shape optimisation moves its surface.

A shape space moves the interior nodes of a fixed reference volume mesh by harmonic
extension of the surface displacement (``mf_dmri.fem.extension``).  Large, non-affine
surface motion squeezes interior tetrahedra; the eigen-solver then loses accuracy.  When
the smallest radius ratio of the deformed mesh drops below a threshold, the current surface
is re-tetrahedralised (netgen keeps the input surface vertices and triangles exactly, so no
surface vertex moves) and the space's harmonic extension is replaced by one on the new
mesh, with the current shape as its reference.

The surface parameterisation (reference vertices, normals, modes, Legendre profiles) is
left untouched: the coefficients keep their meaning and their values, so the optimiser goes
on from the same point (and Adam keeps its moment estimates).  Only the interior changes,
and the shape at the current coefficients is exactly the current surface on the new mesh;
the signal differs only by the FEM discretisation of the new interior.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mf_dmri.fem.extension import HarmonicExtension
from mf_dmri.geometry import SurfaceMesh, tetrahedralize
from mf_dmri.geometry.quality import radius_ratios

#: largest distance between a surface vertex and the matching remeshed boundary node,
#: relative to the surface extent [-] (netgen keeps input vertices up to rounding)
MATCH_TOLERANCE = 1e-9


def min_radius_ratio(space, coefficients: torch.Tensor) -> float:
    """Smallest radius ratio 3 r_in / R_circ [-] of the shape's deformed volume mesh."""
    nodes = space.extension(space.vertices(coefficients)).detach().numpy()
    return float(radius_ratios(nodes, space.extension.elements).min())


def remeshed_space(space, coefficients: torch.Tensor):
    """The shape space with its volume mesh rebuilt inside the surface at ``coefficients``.

    The returned space maps ``coefficients`` to the same surface vertices; its harmonic
    extension lives on a fresh netgen mesh of that surface (reference = current shape),
    renumbered so that the boundary nodes come first, in the space's vertex order.
    """
    vertices = space.vertices(coefficients).detach().numpy()
    surface = SurfaceMesh(vertices, space.faces)
    mesh = tetrahedralize(surface, thin_part_cells=None)
    extent = float(np.ptp(vertices, axis=0).max())
    old = HarmonicExtension.from_mesh(mesh.nodes, mesh.elements)
    if old.num_boundary != len(vertices):
        raise RuntimeError(
            f"the remeshed surface has {old.num_boundary} vertices, the shape "
            f"{len(vertices)}: the mesher changed the surface"
        )
    perm = old.boundary_order(vertices, atol=MATCH_TOLERANCE * extent)
    # new numbering: surface vertex i -> node i, interior nodes after them
    order = np.empty(len(mesh.nodes), dtype=np.int64)
    order[: len(vertices)] = old.boundary[np.argsort(perm)]
    order[len(vertices) :] = old.interior
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    nodes = mesh.nodes[order].copy()
    nodes[: len(vertices)] = vertices  # exact current positions (no mesher rounding)
    extension = HarmonicExtension.from_mesh(nodes, renumber[mesh.elements])
    if not np.array_equal(extension.boundary, np.arange(len(vertices))):
        raise RuntimeError("boundary renumbering failed")
    return dataclasses.replace(space, extension=extension)
