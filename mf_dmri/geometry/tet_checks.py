"""Rules applied to every tetrahedralisation: the several-bodies rule of check_surface, and
a warning (an error when strict) when thin parts have no interior node."""

from __future__ import annotations

import logging

import numpy as np

from mf_dmri.geometry.checks import FIXES, multiple_bodies_description
from mf_dmri.geometry.errors import MultipleBodiesError, UnresolvedThinPartError
from mf_dmri.geometry.quality import boundary_faces, tet_volumes
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.topology import face_components

logger = logging.getLogger("mf_dmri.geometry.tetra")

#: largest accepted fraction of the volume in tetrahedra without an interior node [1]
THIN_PART_FRACTION = 0.5


def check_bodies(geometry, allow_multiple_bodies: bool) -> None:
    """The rule of check_surface: several bodies only when asked for."""
    if allow_multiple_bodies or not isinstance(geometry, SurfaceMesh):
        return
    n_bodies = int(face_components(geometry.faces, geometry.n_vertices).max()) + 1
    if n_bodies > 1:
        raise MultipleBodiesError(
            f"{multiple_bodies_description(n_bodies)}; {FIXES['multiple_bodies'][0]}"
        )


def check_interior_nodes(nodes: np.ndarray, elements: np.ndarray, strict: bool) -> None:
    """Warn (raise when strict) when most of the volume has no interior node."""
    on_boundary = np.zeros(len(nodes), dtype=bool)
    on_boundary[boundary_faces(elements).reshape(-1)] = True
    volumes = tet_volumes(nodes, elements)
    flat = on_boundary[elements].all(axis=1)
    fraction = float(volumes[flat].sum() / volumes.sum())
    if fraction <= THIN_PART_FRACTION:
        return
    message = (
        f"{100 * fraction:.0f} % of the volume lies in tetrahedra whose four nodes are all on "
        f"the boundary ({int((~on_boundary).sum())} interior nodes in all): thin parts have "
        "no node inside, so their cross-section is not resolved; use a smaller length_scale "
        "(about the thickness of the thinnest parts), or keep this mesh and read the "
        "discretisation part of the signal's error bar (P1 vs P2 on it), which measures "
        "what this costs; a larger thin_part_cells adds few interior nodes to netgen's "
        "Delaunay filling"
    )
    if strict:
        raise UnresolvedThinPartError(message)
    logger.warning("tetrahedralize: %s", message)
