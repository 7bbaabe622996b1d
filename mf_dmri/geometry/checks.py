"""Checks of a surface mesh before meshing: every problem found, with where and the fix.

:func:`check_surface` returns a :class:`MeshReport` listing all problems;
:func:`validate_surface` raises the specific :class:`~mf_dmri.geometry.errors.MeshError`
subclass of the first one (in the order of :data:`PROBLEM_ORDER`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from mf_dmri.geometry import errors
from mf_dmri.geometry.intersections import self_intersections
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.topology import (
    duplicate_vertex_groups,
    edge_table,
    face_components,
    inconsistent_edges,
)

logger = logging.getLogger(__name__)

#: plausible largest extent of one simulated domain, [m]: 10 nm to 10 mm
PLAUSIBLE_EXTENT = (1e-8, 1e-2)
#: typical extent of a cell or a voxel-sized tissue block [m], used for unit hints only
TYPICAL_EXTENT = (1e-7, 1e-3)
#: vertices closer than this fraction of the bounding-box diagonal count as duplicates
DUPLICATE_RELATIVE_TOLERANCE = 1e-9
#: faces whose height is below this fraction of their longest edge count as degenerate
DEGENERATE_RELATIVE_HEIGHT = 1e-9

PROBLEM_ORDER = (
    ("duplicate_vertices", errors.DuplicateVerticesError),
    ("degenerate_faces", errors.DegenerateFacesError),
    ("open_edges", errors.OpenSurfaceError),
    ("nonmanifold_edges", errors.NonManifoldError),
    ("inconsistent_edges", errors.InconsistentWindingError),
    ("inward_bodies", errors.InwardWindingError),
    ("self_intersections", errors.SelfIntersectionError),
    ("multiple_bodies", errors.MultipleBodiesError),
    ("implausible_size", errors.ImplausibleSizeError),
)

_REPAIR_PY = "repair it: mf_dmri.geometry.repair_surface(mesh)"
_REPAIR_CLI = "repair it: mf-dmri mesh repair IN OUT --unit UNIT"

#: the fix of each problem: (for Python callers, for the command line)
FIXES = {
    "duplicate_vertices": (_REPAIR_PY, _REPAIR_CLI),
    "degenerate_faces": (_REPAIR_PY, _REPAIR_CLI),
    "open_edges": (_REPAIR_PY + " (fills the holes)", _REPAIR_CLI + " (fills the holes)"),
    "nonmanifold_edges": (_REPAIR_PY, _REPAIR_CLI),
    "inconsistent_edges": (_REPAIR_PY, _REPAIR_CLI),
    "inward_bodies": (_REPAIR_PY, _REPAIR_CLI),
    "self_intersections": (
        _REPAIR_PY + " (re-triangulates around the crossings), or mesh it with "
        "tetrahedralize(mesh, method='tetwild'), which tolerates crossings",
        _REPAIR_CLI + " (re-triangulates around the crossings)",
    ),
    "multiple_bodies": (
        "pass allow_multiple_bodies=True if they are meant as separate or nested "
        "compartments, else keep the largest: repair_surface(mesh, keep_largest=True)",
        "pass --allow-multiple-bodies if they are meant as separate or nested compartments, "
        "else keep the largest: mf-dmri mesh repair IN OUT --unit UNIT --keep-largest",
    ),
    "implausible_size": (
        "reload with the file's unit, e.g. unit=mf_dmri.units.um for micrometres, or pass "
        "plausible_extent to accept this size",
        "rerun with the file's unit, e.g. --unit um for micrometres",
    ),
}


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


def _where(points: np.ndarray, limit: int = 3) -> str:
    shown = ", ".join("(" + ", ".join(f"{c:.4g}" for c in p) + ")" for p in points[:limit])
    more = f" and {len(points) - limit} more" if len(points) > limit else ""
    return f"at {shown} [m]{more}"


@dataclass(frozen=True, eq=False)
class MeshReport:
    """What :func:`check_surface` found.  Arrays are read-only; ``messages`` maps each
    problem name of :data:`PROBLEM_ORDER` that occurs to a sentence naming it and the fix
    for Python callers; ``descriptions`` holds the sentences without the fix (the command
    line adds its own, see :data:`FIXES`).

    extent: largest bounding-box side [m]; area [m^2]; volume: signed enclosed volume [m^3];
    body_volumes: signed volume of each connected body [m^3].
    """

    n_vertices: int
    n_faces: int
    n_bodies: int
    extent: float
    area: float
    volume: float
    body_volumes: np.ndarray
    duplicate_vertices: np.ndarray
    degenerate_faces: np.ndarray
    open_edges: np.ndarray
    nonmanifold_edges: np.ndarray
    inconsistent_edges: np.ndarray
    inward_bodies: np.ndarray
    self_intersections: np.ndarray
    descriptions: MappingProxyType

    @property
    def messages(self) -> MappingProxyType:
        """Each problem found -> a sentence naming it, where, and the fix (Python)."""
        return MappingProxyType(
            {name: f"{text}; {FIXES[name][0]}" for name, text in self.descriptions.items()}
        )

    @property
    def problems(self) -> tuple[str, ...]:
        """Names of the problems found, in :data:`PROBLEM_ORDER`."""
        return tuple(name for name, _ in PROBLEM_ORDER if name in self.descriptions)

    @property
    def ok(self) -> bool:
        return not self.descriptions

    def summary(self, for_cli: bool = False) -> str:
        """A multi-line human-readable summary; ``for_cli`` words the fixes as command
        line flags instead of Python calls."""
        lines = [
            f"vertices {self.n_vertices}, faces {self.n_faces}, bodies {self.n_bodies}",
            f"extent {self.extent:.4g} m, area {self.area:.4g} m^2, volume {self.volume:.4g} m^3",
        ]
        if self.ok:
            lines.append("no problems found")
        fix = 1 if for_cli else 0
        lines += [
            f"PROBLEM {name}: {self.descriptions[name]}; {FIXES[name][fix]}"
            for name in self.problems
        ]
        return "\n".join(lines)


def _size_message(extent: float, plausible: tuple[float, float]) -> str | None:
    low, high = plausible
    if low <= extent <= high:
        return None
    fits = [
        f"x{factor:g}"
        for factor in (1e-9, 1e-6, 1e-3, 1e3, 1e6, 1e9)
        if TYPICAL_EXTENT[0] <= extent * factor <= TYPICAL_EXTENT[1]
    ]
    hint = f" (rescaling by {' or '.join(fits)} gives a cell-like size)" if fits else ""
    return (
        f"largest extent {extent:.4g} m is outside the plausible range {low:g}..{high:g} m "
        f"for a cell or tissue block; the length unit given when loading is probably wrong"
        f"{hint}"
    )


def multiple_bodies_description(n_bodies: int) -> str:
    """The problem sentence for a surface of several disconnected bodies."""
    return f"the surface has {n_bodies} disconnected bodies"


def check_surface(
    mesh: SurfaceMesh,
    *,
    allow_multiple_bodies: bool = False,
    check_self_intersections: bool = True,
    plausible_extent: tuple[float, float] = PLAUSIBLE_EXTENT,
) -> MeshReport:
    """Check a surface for every problem that would break tetrahedralisation or physics.

    mesh: the surface [m].  allow_multiple_bodies: accept several disconnected bodies (nested
    or disjoint compartments).  check_self_intersections: run the triangle-triangle tests.
    plausible_extent: (low, high) accepted largest bounding-box side [m].
    """
    if mesh.n_faces == 0:
        raise errors.MeshError("the surface has no faces; load a triangle surface mesh")
    diagonal = float(np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    messages: dict[str, str] = {}
    groups = duplicate_vertex_groups(mesh.vertices, DUPLICATE_RELATIVE_TOLERANCE * diagonal)
    duplicates = np.sort(np.concatenate([g[1:] for g in groups])) if groups else np.zeros(0, int)
    if len(duplicates):
        messages["duplicate_vertices"] = (
            f"{len(duplicates)} vertices duplicate another vertex's position "
            f"{_where(mesh.vertices[[g[0] for g in groups]])} (typical of STL files)"
        )
    degenerate = _degenerate_faces(mesh)
    if len(degenerate):
        messages["degenerate_faces"] = (
            f"{len(degenerate)} faces have zero area "
            f"{_where(mesh.triangles()[degenerate].mean(axis=1))}"
        )
    edges, _, counts = edge_table(mesh.faces)
    open_edges, nonmanifold = edges[counts == 1], edges[counts > 2]
    if len(open_edges):
        midpoints = mesh.vertices[open_edges].mean(axis=1)
        messages["open_edges"] = (
            f"the surface is not watertight: {len(open_edges)} open (boundary) edges "
            f"{_where(midpoints)}"
        )
    if len(nonmanifold):
        messages["nonmanifold_edges"] = (
            f"{len(nonmanifold)} edges are shared by more than two faces "
            f"{_where(mesh.vertices[nonmanifold].mean(axis=1))}"
        )
    flipped = inconsistent_edges(mesh.faces)
    if len(flipped):
        messages["inconsistent_edges"] = (
            f"winding is inconsistent: {len(flipped)} edges are traversed in the same "
            f"direction by both faces {_where(mesh.vertices[flipped].mean(axis=1))}"
        )
    body_volumes, n_bodies = _body_volumes(mesh)
    inward = np.nonzero(body_volumes < 0)[0]
    if len(inward) and not len(flipped):
        messages["inward_bodies"] = (
            f"{len(inward)} of {n_bodies} bodies are wound inwards (negative volume "
            f"{body_volumes[inward[0]]:.4g} m^3)"
        )
    pairs = self_intersections(mesh) if check_self_intersections else np.zeros((0, 2), int)
    if len(pairs):
        messages["self_intersections"] = (
            f"{len(pairs)} pairs of faces intersect "
            f"{_where(mesh.triangles()[pairs[:, 0]].mean(axis=1))}"
        )
    if n_bodies > 1 and not allow_multiple_bodies:
        messages["multiple_bodies"] = multiple_bodies_description(n_bodies)
    extent = mesh.extent()
    size_message = _size_message(extent, plausible_extent)
    if size_message:
        messages["implausible_size"] = size_message
    return MeshReport(
        n_vertices=mesh.n_vertices,
        n_faces=mesh.n_faces,
        n_bodies=n_bodies,
        extent=extent,
        area=mesh.area(),
        volume=mesh.signed_volume(),
        body_volumes=_frozen(body_volumes),
        duplicate_vertices=_frozen(duplicates),
        degenerate_faces=_frozen(degenerate),
        open_edges=_frozen(open_edges),
        nonmanifold_edges=_frozen(nonmanifold),
        inconsistent_edges=_frozen(flipped),
        inward_bodies=_frozen(inward),
        self_intersections=_frozen(pairs),
        descriptions=MappingProxyType(messages),
    )


def _degenerate_faces(mesh: SurfaceMesh) -> np.ndarray:
    faces = mesh.faces
    repeated = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    )
    tri = mesh.triangles()
    longest = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
    height = 2 * mesh.face_areas() / np.where(longest > 0, longest, 1.0)
    return np.nonzero(
        repeated
        | (height <= DEGENERATE_RELATIVE_HEIGHT * np.maximum(longest, np.finfo(float).tiny))
    )[0]


def _body_volumes(mesh: SurfaceMesh) -> tuple[np.ndarray, int]:
    labels = face_components(mesh.faces, mesh.n_vertices)
    n_bodies = int(labels.max()) + 1
    tri = mesh.triangles() - mesh.vertices.mean(axis=0)
    per_face = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6
    return np.bincount(labels, weights=per_face, minlength=n_bodies), n_bodies


def validate_surface(
    mesh: SurfaceMesh,
    *,
    allow_multiple_bodies: bool = False,
    plausible_extent: tuple[float, float] = PLAUSIBLE_EXTENT,
) -> MeshReport:
    """Raise the specific MeshError of the first problem found; return the report if none.

    mesh: the surface [m].  allow_multiple_bodies: accept several disconnected bodies.
    plausible_extent: (low, high) accepted largest bounding-box side [m].
    """
    report = check_surface(
        mesh, allow_multiple_bodies=allow_multiple_bodies, plausible_extent=plausible_extent
    )
    for name, error in PROBLEM_ORDER:
        if name in report.messages:
            others = [p for p in report.problems if p != name]
            also = f" (also found: {', '.join(others)})" if others else ""
            raise error(report.messages[name] + also)
    return report
