"""Isotropic surface remeshing between repair and tetrahedralisation: well-shaped triangles
whose edge length follows the local thickness, so the tetrahedra built on them are not flat.

Repaired real cell surfaces keep the sliver and needle triangles of the decimated input;
netgen keeps every surface triangle, so those become flat tetrahedra that the eigenbasis
refuses.  :func:`remesh_surface` rebuilds the triangulation with a per-vertex target edge

    h = clip(local_thickness / cells_across, min_edge, max_edge),

graded so that neighbouring targets differ by at most ``grading`` times their distance,
by the split / collapse / flip / tangential-smoothing loop of Botsch & Kobbelt (2004)
(:mod:`mf_dmri.geometry.remesh_ops`), every vertex projected back onto the input surface
after each smoothing step (gpytoolbox's AABB closest point; a projection to the opposite
wall of a thin part is refused).  The result must be closed, manifold and free of
self-intersections, and its volume within ``volume_tolerance`` of the input; otherwise a
:class:`~mf_dmri.geometry.errors.RemeshError` names the next step.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mf_dmri.geometry.checks import check_surface
from mf_dmri.geometry.errors import RemeshError
from mf_dmri.geometry.remesh_ops import (
    SLIVER_ANGLE,
    collapse_short_edges,
    edge_table,
    flip_edges,
    split_long_edges,
    tangential_smoothing,
    unfolded_move,
    vertex_normals,
)
from mf_dmri.geometry.remesh_volume import restore_volume, volume_between
from mf_dmri.geometry.repair_local import repair_defects
from mf_dmri.geometry.repair_steps import body_volumes, compact
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.thickness import local_thickness

logger = logging.getLogger(__name__)

#: collapse passes per coarse round at most, until none is left (a pass collapses a
#: non-interacting set of edges only), and per round at the targets
COARSE_COLLAPSE_PASSES, COLLAPSE_PASSES = 20, 2
#: coarse rounds start at 2^k times the targets, k = floor(log2(r / COARSE_RATIO)) with r
#: the 90th percentile of the input's edge / target ratio, at most MAX_COARSE_ROUNDS
COARSE_RATIO, MAX_COARSE_ROUNDS = 2.0, 3


@dataclass(frozen=True)
class RemeshReport:
    """What :func:`remesh_surface` changed.

    faces_before / faces_after: face counts; volume_before / volume_after: enclosed
    volumes [m^3]; min_angle_before / min_angle_after: smallest triangle angle [deg];
    min_target / max_target: range of the target edge length [m]; iterations: remeshing
    rounds; splits, collapses, flips: operations made; thin_vertices: input vertices whose
    target was raised to ``min_edge`` (thinner than min_edge x cells_across);
    volume_remeshed: volume after remeshing, before restoring it [m^3] (the chords of the
    new triangles cut volume off: most across thin parts); local_move: the largest move of
    a vertex along its normal by the gap of its faces to the input [m]; uniform_vertices:
    vertices where walls crossed after the local moves, moved uniformly instead; offset:
    the uniform move of every vertex along its normal that restored what remained of the
    input volume [m] (positive outwards; :mod:`mf_dmri.geometry.remesh_volume`);
    displaced_remeshed / displaced_after: volume between the input surface and the remeshed
    one before restoring the volume / of the result [m^3] (sum of face areas times their
    mean gaps);
    dropped_bodies / dropped_volume: bodies smaller than min_edge^3 (or of zero or negative
    volume: too small for one element at the floor size) removed, and their volume [m^3];
    retriangulated: regions where thin walls crossed after remeshing, re-triangulated by
    the repair's local step; slivers_after: triangles of the result with a smallest angle
    below SLIVER_ANGLE (5 deg); coarse_rounds: rounds at 2^k, ..., 2 times the targets run
    before the ``iterations`` rounds at the targets (:func:`coarse_factors`).
    """

    faces_before: int
    faces_after: int
    volume_before: float
    volume_after: float
    min_angle_before: float
    min_angle_after: float
    min_target: float
    max_target: float
    iterations: int
    splits: int
    collapses: int
    flips: int
    thin_vertices: int
    volume_remeshed: float
    local_move: float
    uniform_vertices: int
    offset: float
    displaced_remeshed: float
    displaced_after: float
    dropped_bodies: int
    dropped_volume: float
    retriangulated: int
    slivers_after: int
    coarse_rounds: int

    @property
    def volume_change(self) -> float:
        """(after - before) / before [1]."""
        return (self.volume_after - self.volume_before) / abs(self.volume_before)

    def summary(self) -> str:
        dropped = (
            f"; {self.dropped_bodies} bodies below min_edge^3 dropped "
            f"({self.dropped_volume:.3g} m^3)"
            if self.dropped_bodies
            else ""
        )
        crossed = (
            f"; {self.retriangulated} regions of crossing thin walls re-triangulated"
            if self.retriangulated
            else ""
        )
        coarse = f" after {self.coarse_rounds} at coarser targets" if self.coarse_rounds else ""
        v = abs(self.volume_before)
        return (
            f"remesh: faces {self.faces_before} -> {self.faces_after}; volume "
            f"{self.volume_before:.6g} -> {self.volume_after:.6g} m^3 "
            f"({100 * self.volume_change:+.3f} %); smallest triangle angle "
            f"{self.min_angle_before:.2f} -> {self.min_angle_after:.2f} deg "
            f"({self.slivers_after} below {SLIVER_ANGLE:g} deg); target edge "
            f"{self.min_target:.3g}..{self.max_target:.3g} m ({self.thin_vertices} input "
            f"vertices at the floor); {self.splits} splits, {self.collapses} collapses, "
            f"{self.flips} flips in {self.iterations} rounds{coarse}; remeshed volume "
            f"{100 * self.shrinkage:+.3f} % restored where it was lost (vertex moves up to "
            f"{self.local_move:.3g} m; {self.uniform_vertices} vertices of crossing walls "
            f"moved uniformly) and by a normal offset of {self.offset:.3g} m; volume "
            f"between the input and the surface {100 * self.displaced_remeshed / v:.2f} % -> "
            f"{100 * self.displaced_after / v:.2f} % of the input{dropped}{crossed}"
        )

    @property
    def shrinkage(self) -> float:
        """Relative volume change of the remeshing before the offset [1]."""
        return (self.volume_remeshed - self.volume_before) / abs(self.volume_before)


def min_triangle_angles(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Smallest angle of every triangle (F,) [deg]."""
    tri = vertices[faces]
    angles = []
    for k in range(3):
        u, v = tri[:, (k + 1) % 3] - tri[:, k], tri[:, (k + 2) % 3] - tri[:, k]
        cos = np.einsum("ij,ij->i", u, v) / np.maximum(
            np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-300
        )
        angles.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return np.min(angles, axis=0)


def target_sizes(
    mesh: SurfaceMesh, cells_across: float, min_edge: float, max_edge: float, grading: float
) -> tuple[np.ndarray, int]:
    """Per-vertex target edge [m] and the count of vertices raised to ``min_edge``."""
    # thicker than max_edge x cells_across all give max_edge: cast the rays that far only
    wanted = local_thickness(mesh, reach=max_edge * cells_across) / cells_across
    sizes = np.clip(wanted, min_edge, max_edge)
    edges, _, _ = edge_table(mesh.faces)
    length = np.linalg.norm(mesh.vertices[edges[:, 0]] - mesh.vertices[edges[:, 1]], axis=1)
    for _ in range(100):  # grade: h_i <= h_j + grading |x_i - x_j|
        bound = np.minimum(sizes[edges[:, 1]], sizes[edges[:, 0]]) + grading * length
        graded = sizes.copy()
        np.minimum.at(graded, edges[:, 0], bound)
        np.minimum.at(graded, edges[:, 1], bound)
        graded = np.maximum(graded, min_edge)
        if np.array_equal(graded, sizes):
            break
        sizes = graded
    return sizes, int((wanted < min_edge).sum())


class _Projector:
    """Closest points on the input surface (libigl's AABB tree through gpytoolbox)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray) -> None:
        from gpytoolbox_bindings import _point_mesh_squared_distance_cpp_impl

        self.vertices = np.array(vertices, dtype=np.float64)
        self.faces = np.array(faces, dtype=np.int32)
        tri = vertices[faces]
        n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        self.normals = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)
        self.query = _point_mesh_squared_distance_cpp_impl

    def __call__(self, points: np.ndarray, normals: np.ndarray, reach: np.ndarray) -> np.ndarray:
        """Each point moved to its closest input point when that lies within ``reach``
        and on a face facing the same way (not the opposite wall of a thin part)."""
        closest, same_side = self._closest(points, normals)
        near = np.linalg.norm(closest - points, axis=1) < reach
        return np.where((same_side & near)[:, None], closest, points)

    def _closest(self, points: np.ndarray, normals: np.ndarray):
        """Closest input point of each point (P, 3) and whether its face faces the same
        way as ``normals`` (P,)."""
        _, index, closest = self.query(self.vertices, self.faces, np.array(points))
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        closest = np.asarray(closest).reshape(-1, 3)
        return closest, np.einsum("ij,ij->i", self.normals[index], normals) > 0

    def gaps(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Signed distance along ``normals`` (unit) from each point to its closest input
        point (positive outwards: the input lies outside), 0 where that point lies on a
        face facing the other way (the opposite wall of a thin part)."""
        closest, same_side = self._closest(points, normals)
        return np.where(same_side, np.einsum("ij,ij->i", closest - points, normals), 0.0)


def remesh_surface(
    mesh: SurfaceMesh,
    *,
    max_edge: float,
    min_edge: float | None = None,
    cells_across: float = 1.5,
    grading: float = 0.5,
    iterations: int = 6,
    keep_creases: bool = False,
    volume_tolerance: float = 0.01,
    check_self_intersections: bool = True,
) -> tuple[SurfaceMesh, RemeshReport]:
    """Remesh a closed, manifold, outward surface (e.g. from :func:`repair_surface`) into
    well-shaped triangles with edges following the local thickness; report the change.

    mesh: closed surface [m] (several bodies allowed).  max_edge: largest target edge [m]
    (the resolution the eigenmodes need, e.g. a third of the eigenbasis length_scale).
    min_edge: floor of the target edge [m] (default max_edge / 4; max_edge / 10 gave 10-14 %
    more triangles and tetrahedra on the navis cells): parts thinner than
    min_edge x cells_across get fewer than ``cells_across`` edges across.  cells_across:
    target edges across the local thickness [1] (1.5: about five edges around a round
    neurite; the tetrahedra then have one to two elements across it).  grading: largest
    change of the target per unit distance [1].  iterations: split/collapse/flip/smooth rounds
    at the targets; an input whose edges are mostly several times longer than their targets
    (long needle triangles) first gets up to three rounds at 8, 4, 2 times the targets
    (:func:`coarse_factors`), which keeps the intermediate mesh near the size of the result.
    keep_creases: an edge with one end on a crease (faces meeting at more than 60 deg:
    the edges of a coarse polyhedral input) collapses onto that end and one joining two
    creases not at all, instead of to its midpoint: less volume to restore, but the input's
    sliver triangles along the creases stay (0.4-0.8 deg on the navis cells, and netgen
    made zero-volume tetrahedra from them on 1734350788).  Vertices on creases are never
    smoothed.
    volume_tolerance: largest accepted relative volume change [1] of the result; the
    chords of the new triangles cut the creases of a coarse input and the round sections of
    thin parts, so the remeshed volume is restored where it was lost (each vertex moved
    along its normal by the mean gap of its faces to the input,
    :mod:`mf_dmri.geometry.remesh_volume`), then what is left by moving every vertex by one
    distance along its normal (reported; refused beyond a quarter of min_edge).
    check_self_intersections: run the triangle-triangle tests on the result.
    Raises RemeshError (naming the next step) when the result fails a check.
    """
    min_edge = max_edge / 4 if min_edge is None else min_edge
    for name, value in (("max_edge", max_edge), ("min_edge", min_edge)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive length [m], got {value!r}")
    if min_edge > max_edge:
        raise ValueError(f"min_edge {min_edge!r} m exceeds max_edge {max_edge!r} m")
    if not cells_across > 0 or not grading > 0 or iterations < 1:
        raise ValueError(
            f"cells_across and grading must be positive and iterations >= 1, got "
            f"{cells_across!r}, {grading!r}, {iterations!r}"
        )
    _check_input(mesh)
    kept, dropped, dropped_volume = _drop_small_bodies(mesh, min_edge**3)
    scale = kept.extent()
    sizes, thin = target_sizes(kept, cells_across, min_edge, max_edge, grading)
    vertices, faces = kept.vertices / scale, np.array(kept.faces)
    sizes = sizes / scale
    project = _Projector(vertices, faces)
    counts = np.zeros(3, dtype=np.int64)
    coarse = coarse_factors(vertices, faces, sizes)
    for factor in [*coarse, *[1.0] * iterations]:
        vertices, faces, scaled = _remesh_round(
            vertices,
            faces,
            sizes * factor,
            project,
            keep_creases,
            counts,
            COARSE_COLLAPSE_PASSES if factor > 1 else COLLAPSE_PASSES,
        )
        sizes = scaled / factor
    faces, counts[2] = _flip_to_delaunay(vertices, faces, counts[2])
    shrunk = SurfaceMesh(vertices * scale, faces).signed_volume()
    displaced = volume_between(vertices, faces, project.gaps) * scale**3
    vertices, local, uniform, offset = restore_volume(
        vertices, faces, kept.signed_volume() / scale**3, project.gaps
    )
    # walls of thin parts that the new triangles made cross: re-triangulated locally
    vertices, faces, patches, _ = repair_defects(vertices, faces)
    result = SurfaceMesh(vertices * scale, faces)
    angles = min_triangle_angles(result.vertices, result.faces)
    report = RemeshReport(
        mesh.n_faces,
        result.n_faces,
        mesh.signed_volume(),
        result.signed_volume(),
        float(min_triangle_angles(mesh.vertices, mesh.faces).min()),
        float(angles.min()),
        float(sizes.min() * scale),
        float(sizes.max() * scale),
        iterations,
        int(counts[0]),
        int(counts[1]),
        int(counts[2]),
        thin,
        shrunk,
        local * scale,
        uniform,
        offset * scale,
        displaced,
        volume_between(vertices, faces, project.gaps) * scale**3,
        dropped,
        dropped_volume,
        len(patches),
        int((angles < SLIVER_ANGLE).sum()),
        len(coarse),
    )
    logger.info("remesh_surface: %s", report.summary())
    _check_result(result, report, volume_tolerance, 0.25 * min_edge, check_self_intersections)
    return result, report


def coarse_factors(vertices: np.ndarray, faces: np.ndarray, sizes: np.ndarray) -> list[float]:
    """Target factors of the rounds run before the rounds at the targets: 2^k, ..., 2 (none
    when k = 0), k = floor(log2(r / COARSE_RATIO)) clipped to [0, MAX_COARSE_ROUNDS], r the
    90th percentile of the edge / target ratio of the input (any consistent unit).

    Splitting the long edges of needle triangles (a surface of long thin frusta: an SWC
    skeleton with nodes 2-12 um apart) straight to their target makes a fan of slivers
    with several times the vertices needed (a NeuroMorpho cell's 153k triangles became
    3.1 M where 0.53 M are needed); halving the target round by round, each round's
    collapses thin the vertices out before the next split."""
    edges, _, _ = edge_table(faces)
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    ratio = float(np.percentile(length / sizes[edges].mean(axis=1), 90))
    k = int(np.clip(np.floor(np.log2(ratio / COARSE_RATIO)), 0, MAX_COARSE_ROUNDS))
    return [2.0**j for j in range(k, 0, -1)]


def _remesh_round(vertices, faces, sizes, project, keep_creases, counts, passes):
    """One split / collapse / flip / smooth round towards the targets ``sizes``; ``counts``
    (splits, collapses, flips) updated in place.  Returns the arrays."""
    n_before = len(vertices)
    vertices, faces, sizes = split_long_edges(vertices, faces, sizes)
    counts[0] += len(vertices) - n_before
    for _ in range(passes):
        vertices, faces, sizes, collapsed = collapse_short_edges(
            vertices, faces, sizes, keep_creases
        )
        counts[1] += collapsed
        if collapsed == 0:
            break
    vertices, faces, sizes = _compact(vertices, faces, sizes)
    faces, counts[2] = _flip_to_delaunay(vertices, faces, counts[2])
    smoothed = tangential_smoothing(vertices, faces)
    projected = project(smoothed, vertex_normals(smoothed, faces), 0.5 * sizes)
    return unfolded_move(vertices, projected, faces), faces, sizes


def _flip_to_delaunay(vertices, faces, flips: int, passes: int = 50):
    """Flip passes until no edge is left to flip (or ``passes``); the flips counted."""
    for _ in range(passes):
        faces, flipped = flip_edges(vertices, faces)
        flips += flipped
        if flipped == 0:
            break
    return faces, flips


def _drop_small_bodies(mesh: SurfaceMesh, smallest: float):
    """The surface without bodies of volume below ``smallest`` [m^3] (zero-volume and
    inward bodies included), their count and total volume [m^3]."""
    labels, volumes = body_volumes(mesh.vertices, mesh.faces)
    small = volumes < smallest
    if not small.any():
        return mesh, 0, 0.0
    if small.all():
        raise RemeshError(
            f"every body of the surface is smaller than min_edge^3 = {smallest:.3g} m^3 "
            f"(volumes {volumes.min():.3g}..{volumes.max():.3g} m^3); use a smaller min_edge"
        )
    vertices, faces = compact(mesh.vertices, mesh.faces[~small[labels]])
    return SurfaceMesh(vertices, faces), int(small.sum()), float(volumes[small].sum())


def _compact(vertices, faces, sizes):
    used, index = np.unique(faces, return_inverse=True)
    return vertices[used], index.reshape(-1, 3), sizes[used]


def _surface_problems(mesh: SurfaceMesh, check_self_intersections: bool) -> str:
    """The problems of ``mesh`` that remeshing cannot accept ("name: description; ..."),
    empty when none: several bodies and an unusual size are allowed."""
    report = check_surface(
        mesh, allow_multiple_bodies=True, check_self_intersections=check_self_intersections
    )
    left = [p for p in report.problems if p not in ("implausible_size", "multiple_bodies")]
    return "; ".join(f"{name}: {report.descriptions[name]}" for name in left)


def _check_input(mesh: SurfaceMesh) -> None:
    details = _surface_problems(mesh, check_self_intersections=False)
    if details:
        raise RemeshError(
            f"remesh_surface needs a closed, manifold, outward surface ({details}); "
            "repair it first: mf_dmri.geometry.repair_surface(mesh)"
        )


def _check_result(result, report, volume_tolerance, max_offset, check_self_intersections):
    if abs(report.volume_change) > volume_tolerance or abs(report.offset) > max_offset:
        raise RemeshError(
            f"remeshing changed the volume by {100 * report.shrinkage:+.2f} %, "
            f"{100 * report.volume_change:+.2f} % after a normal offset of {report.offset:.3g} m"
            f" (accepted: {100 * volume_tolerance:g} % and {max_offset:.3g} m): thin parts were "
            "lost; use a larger cells_across or a smaller min_edge",
            surface=result,
            report=report,
        )
    details = _surface_problems(result, check_self_intersections)
    if details:
        raise RemeshError(
            f"the remeshed surface is not valid ({details}); use a larger cells_across or a "
            "smaller min_edge (thin parts where opposite walls came too close), or "
            "tetrahedralize the repaired surface with method='tetwild'",
            surface=result,
            report=report,
        )
