"""Explicit surface repair of real (scanned, segmented, exported) cell surfaces.  Never
called implicitly: the user calls it and reads the report of every change.

Steps, in order (docs/meshing.md):

1. merge vertices closer than ``merge_tolerance`` times their local (longest incident)
   edge length;
2. cancel faces by their winding-number meaning: both faces of a double-sided sheet or a
   fin (same three vertices, opposite winding) go, repeated faces are kept once, faces
   with a repeated corner go;
3. make the winding consistent, remove flat (zero-volume) bodies, fill cavities (inward
   bodies inside another body), invert the other inward bodies;
4. re-triangulate the neighbourhood of every remaining defect (faces crossing another
   face of their body, non-manifold edges and vertices, zero-area faces) and close every
   hole (:mod:`mf_dmri.geometry.repair_local`), growing the neighbourhood of each defect
   that remains;
5. take the exact union (manifold3d) of bodies that cross each other; bodies it leaves
   touching (coplanar contact) are re-triangulated where they touch, as in step 4;
6. only if defects remain (spread over many small faces: a finely tessellated input),
   step 4 again with wider rings (``WIDER_RINGS`` faces);
7. optionally keep only the largest body.

The result is checked like any input; when a problem remains a
:class:`~mf_dmri.geometry.errors.RepairError` names it and the route that helps next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from mf_dmri.geometry.checks import check_surface
from mf_dmri.geometry.errors import RepairError
from mf_dmri.geometry.repair_local import (
    PASSES,
    WIDER_RINGS,
    find_defects,
    open_faces,
    repair_defects,
)
from mf_dmri.geometry.repair_steps import (
    body_volumes,
    cancel_faces,
    compact,
    consistent_winding,
    merge_close_vertices,
    signed_volume,
    sort_bodies,
)
from mf_dmri.geometry.repair_volume import restore_volume
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.union import union_of_bodies

logger = logging.getLogger(__name__)

#: vertices closer than this fraction of their median incident edge length are merged
MERGE_RELATIVE_TOLERANCE = 1e-3
#: bodies with |volume| below this fraction of (area x mean edge length) are flat
FLAT_RELATIVE_VOLUME = 1e-3


@dataclass(frozen=True)
class RepairAction:
    """One kind of change: ``kind`` (a short name), ``count`` of items changed, a
    ``detail`` sentence, ``volume_change`` [m^3] it caused (divergence-theorem volume
    after minus before) and up to ten locations ``where`` (k, 3) [m]."""

    kind: str
    count: int
    detail: str
    volume_change: float = 0.0
    where: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)), compare=False)


@dataclass(frozen=True)
class RepairReport:
    """What :func:`repair_surface` changed.

    actions: every change made, in order.  input_volume: divergence-theorem volume of the
    input as given [m^3] (repeated faces counted each time; ill-defined for an open
    input); volume_before: the same after repeated faces are counted once, the volume of
    the solid the input describes [m^3]; volume_after: volume of the result [m^3];
    faces_before / faces_after: face counts.
    """

    actions: tuple[RepairAction, ...]
    input_volume: float
    volume_before: float
    volume_after: float
    faces_before: int
    faces_after: int

    @property
    def volume_change(self) -> float:
        """Relative change of the solid's volume, (after - before) / before [1]."""
        return (self.volume_after - self.volume_before) / abs(self.volume_before)

    @property
    def changed(self) -> bool:
        return bool(self.actions)

    def count(self, kind: str) -> int:
        """Items changed by the actions of ``kind`` (0 if none)."""
        return sum(a.count for a in self.actions if a.kind == kind)

    def summary(self) -> str:
        """A multi-line human-readable account (for the command line)."""
        lines = [
            f"faces {self.faces_before} -> {self.faces_after}; volume {self.volume_before:.6g}"
            f" -> {self.volume_after:.6g} m^3 ({100 * self.volume_change:+.3f} %)"
        ]
        if not self.actions:
            lines.append("nothing to repair")
        for action in self.actions:
            change = f" (volume {action.volume_change:+.3g} m^3)" if action.volume_change else ""
            lines.append(f"{action.kind}: {action.count} -- {action.detail}{change}")
        return "\n".join(lines)


def _where(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 3)[:10]


def _clean(vertices, faces, merge_tolerance, actions):
    vertices, faces, merged, where = merge_close_vertices(vertices, faces, merge_tolerance)
    if merged:
        detail = f"vertices closer than {merge_tolerance:g} x local edge length merged"
        actions.append(RepairAction("merge_vertices", merged, detail, 0.0, _where(where)))
    before = signed_volume(vertices, faces)
    centres = vertices[faces].mean(axis=1)
    faces, removed = cancel_faces(faces)
    texts = {
        "collapsed": "faces with a repeated corner (collapsed by merging) removed",
        "double_sided": "faces of double-sided sheets and fins (same vertices, opposite "
        "winding) removed, both sides",
        "repeated": "repeated faces (same vertices, same winding) kept once",
    }
    for kind, index in removed.items():
        if len(index):
            actions.append(RepairAction(kind, len(index), texts[kind], 0.0, _where(centres[index])))
    vertices, faces = compact(vertices, faces)
    return vertices, faces, before


def _bodies(vertices, faces, actions):
    faces, flipped = consistent_winding(faces)
    if flipped:
        actions.append(
            RepairAction("reoriented", flipped, "faces flipped to agree with their neighbours")
        )
    centres = vertices[faces].mean(axis=1)
    faces, changed, volumes = sort_bodies(vertices, faces, FLAT_RELATIVE_VOLUME)
    texts = {
        "flat": "faces of flat (zero-volume) bodies removed",
        "cavity": "faces of cavities (inward bodies inside another body) removed: filled",
        "inverted": "faces of inward bodies (not inside another) inverted",
    }
    for kind, index in changed.items():
        if len(index):
            change = -float(volumes[kind].sum()) if kind == "cavity" else 0.0
            if kind == "inverted":
                change = -2 * float(volumes[kind].sum())
            actions.append(
                RepairAction(kind, len(index), texts[kind], change, _where(centres[index]))
            )
    return compact(vertices, faces)


def repair_surface(
    mesh: SurfaceMesh,
    *,
    merge_tolerance: float = MERGE_RELATIVE_TOLERANCE,
    max_rings: int = 2,
    keep_largest: bool = False,
) -> tuple[SurfaceMesh, RepairReport]:
    """Repair a surface into closed, manifold, outward bodies without crossings; report
    every change and the volume before and after.

    mesh: surface [m].  merge_tolerance: merge vertices closer than this fraction of their
    local edge length [1].  max_rings: largest neighbourhood (rings of faces) re-
    triangulated around a defect; in the last stage, run only when defects remain, the
    rings are ``WIDER_RINGS`` faces wide (up to 8 x max_rings faces; a defect spread over
    many small faces).  keep_largest: drop every body but the largest.
    Raises :class:`~mf_dmri.geometry.errors.RepairError` (naming the next route) when a
    problem remains.
    """
    if not 0 <= merge_tolerance < 0.5:
        raise ValueError(f"merge_tolerance must be in [0, 0.5) [1], got {merge_tolerance!r}")
    if max_rings < 1:
        raise ValueError(f"max_rings must be >= 1, got {max_rings!r}")
    vertices, faces = np.array(mesh.vertices), np.array(mesh.faces)
    input_volume = signed_volume(vertices, faces)
    actions: list[RepairAction] = []
    vertices, faces, _ = _clean(vertices, faces, merge_tolerance, actions)
    before = signed_volume(vertices, faces)
    vertices, faces = _bodies(vertices, faces, actions)
    vertices, faces = _retriangulate(vertices, faces, max_rings, False, actions)
    surface = _union(SurfaceMesh(vertices, faces), actions)
    # bodies the union left touching (at separate vertices in one place) or crossing
    vertices, faces, _ = _clean(surface.vertices, surface.faces, merge_tolerance, actions)
    vertices, faces = _retriangulate(vertices, faces, max_rings, True, actions)
    vertices, faces = _bodies(vertices, faces, actions)
    if find_defects(vertices, faces, True).any.any() or open_faces(faces).any():
        # defects spread over many small faces: wider rings (a finely tessellated input)
        vertices, faces = _retriangulate(vertices, faces, max_rings, True, actions, WIDER_RINGS)
        vertices, faces = _bodies(vertices, faces, actions)
    surface = SurfaceMesh(vertices, faces)
    if keep_largest:
        surface = _keep_largest(surface, actions)
    report = RepairReport(
        tuple(actions),
        input_volume,
        before,
        surface.signed_volume(),
        mesh.n_faces,
        surface.n_faces,
    )
    logger.info("repair_surface: %s", report.summary().replace("\n", "; "))
    _check_result(surface, report)
    return surface, report


def _retriangulate(vertices, faces, max_rings, between_bodies, actions, widths=None):
    before = (vertices, faces)
    vertices, faces, patches, _ = repair_defects(
        vertices, faces, max_rings, between_bodies, widths or (1,) * PASSES
    )
    if patches:
        where = "between bodies left by the union" if between_bodies else "and holes"
        if widths:
            where = f"left by the rings above, in rings {', '.join(map(str, widths))} faces wide"
        actions.append(
            RepairAction(
                "retriangulated",
                len(patches),
                f"regions around crossing, non-manifold or zero-area faces {where} "
                f"re-triangulated ({sum(p.faces_removed for p in patches)} faces replaced by "
                f"{sum(p.faces_added for p in patches)})",
                float(sum(p.volume_change for p in patches)),
                _where([p.centre for p in patches]),
            )
        )
        vertices, faces, restored = restore_volume(before, (vertices, faces))
        if restored:
            actions.append(
                RepairAction(
                    "volume_restored",
                    len(restored),
                    "re-triangulated patches refined and moved along their normals to the "
                    f"volume of the faces they replaced ({sum(r.faces_before for r in restored)}"
                    f" faces refined to {sum(r.faces_after for r in restored)})",
                    float(sum(r.volume_change for r in restored)),
                    _where([r.centre for r in restored]),
                )
            )
    return vertices, faces


def _union(surface: SurfaceMesh, actions: list) -> SurfaceMesh:
    before = surface.signed_volume()
    merged_surface, merged = union_of_bodies(surface)
    if merged:
        actions.append(
            RepairAction(
                "union",
                merged,
                "crossing bodies replaced by their union (manifold3d)",
                merged_surface.signed_volume() - before,
            )
        )
    return merged_surface


def _keep_largest(surface: SurfaceMesh, actions: list) -> SurfaceMesh:
    labels, volumes = body_volumes(surface.vertices, surface.faces)
    if len(volumes) < 2:
        return surface
    largest = int(np.argmax(volumes))
    vertices, faces = compact(surface.vertices, surface.faces[labels == largest])
    dropped = float(volumes.sum() - volumes[largest])
    detail = "bodies other than the largest removed"
    actions.append(RepairAction("dropped_bodies", len(volumes) - 1, detail, -dropped))
    return SurfaceMesh(vertices, faces)


def _check_result(surface: SurfaceMesh, report: RepairReport) -> None:
    result = check_surface(surface, allow_multiple_bodies=True)
    left = [name for name in result.problems if name != "implausible_size"]
    if not left:
        return
    details = "; ".join(f"{name}: {result.descriptions[name]}" for name in left)
    raise RepairError(
        f"repair could not make the surface valid ({details}); mesh it with fTetWild, "
        "which tolerates these defects (tetrahedralize(surface, method='tetwild'); the "
        "partly repaired surface is in this error's .surface), or fix the surface in a "
        "mesh editor",
        surface=surface,
        report=report,
    )
