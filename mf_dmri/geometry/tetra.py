"""Tetrahedralisation of closed surfaces or compartment models, with a quality report.

The default mesher is netgen (LGPL-2.1), which keeps the input surfaces exactly, so the
volume of the tetrahedral mesh equals the enclosed surface volume to rounding; see
docs/meshing.md for the comparison with fTetWild, TetGen and gmsh.  The volume fidelity is
checked after meshing: an error beyond ``volume_tolerance`` raises.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from mf_dmri.geometry.budget import run_with_budget
from mf_dmri.geometry.checks import check_surface
from mf_dmri.geometry.compartments import CompartmentModel, build_compartments
from mf_dmri.geometry.errors import MesherError, VolumeFidelityError
from mf_dmri.geometry.mesher_backends import BACKENDS, METHODS, scaled_model
from mf_dmri.geometry.native_output import native_output_to_log
from mf_dmri.geometry.quality import (
    boundary_faces,
    dihedral_angles,
    radius_ratios,
    tet_volumes,
    triangle_area,
)
from mf_dmri.geometry.sizing import local_sizes, refine_surfaces, target_edge
from mf_dmri.geometry.surface import SurfaceMesh
from mf_dmri.geometry.tet_checks import check_bodies, check_interior_nodes

logger = logging.getLogger(__name__)

#: methods that keep the input surfaces exactly (volume and area must match to rounding)
EXACT_BOUNDARY = ("netgen", "tetgen")
#: default wall-time budget of one mesher call [s] per method; the others run in process
DEFAULT_TIME_BUDGET = {"tetwild": 600.0}


@dataclass(frozen=True)
class TetQuality:
    """Quality of a tetrahedral mesh against the surfaces it was built from.

    min_dihedral / max_dihedral [deg]; min_radius_ratio, mean_radius_ratio: 3 r_in/R_circ
    (1 regular); max_aspect_ratio = 1 / min_radius_ratio; volume: tet mesh volume [m^3];
    surface_volume: volume enclosed by the input surfaces [m^3]; volume_error: relative
    difference; boundary_area / surface_area [m^2]; compartment_volumes and
    compartment_surface_volumes per label [m^3]; seconds: meshing wall time [s].
    """

    method: str
    n_nodes: int
    n_elements: int
    min_dihedral: float
    max_dihedral: float
    min_radius_ratio: float
    mean_radius_ratio: float
    volume: float
    surface_volume: float
    boundary_area: float
    surface_area: float
    compartment_volumes: tuple[float, ...]
    compartment_surface_volumes: tuple[float, ...]
    seconds: float

    @property
    def volume_error(self) -> float:
        return abs(self.volume - self.surface_volume) / self.surface_volume

    @property
    def area_error(self) -> float:
        return abs(self.boundary_area - self.surface_area) / self.surface_area

    @property
    def max_aspect_ratio(self) -> float:
        return 1.0 / self.min_radius_ratio

    def summary(self) -> str:
        return (
            f"{self.method}: {self.n_nodes} nodes, {self.n_elements} tets in "
            f"{self.seconds:.2f} s; dihedral {self.min_dihedral:.1f}..{self.max_dihedral:.1f}"
            f" deg; radius ratio min {self.min_radius_ratio:.3f} mean "
            f"{self.mean_radius_ratio:.3f}; volume error {self.volume_error:.2e}; "
            f"boundary area error {self.area_error:.2e}"
        )


@dataclass(frozen=True, eq=False)
class VolumeMesh:
    """Tetrahedral mesh: nodes (N, 3) [m] float64; elements (E, 4) int64, positively
    oriented; labels (E,) int64 compartment index of each element; quality (optional)."""

    nodes: np.ndarray
    elements: np.ndarray
    labels: np.ndarray
    quality: TetQuality | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        nodes = np.array(self.nodes, dtype=np.float64)
        elements = np.array(self.elements, dtype=np.int64)
        labels = np.array(self.labels, dtype=np.int64)
        if nodes.ndim != 2 or nodes.shape[1] != 3 or not np.isfinite(nodes).all():
            raise ValueError(f"nodes must be finite with shape (N, 3) [m], got {nodes.shape}")
        if elements.ndim != 2 or elements.shape[1] != 4:
            raise ValueError(f"elements must have shape (E, 4), got {elements.shape}")
        if elements.size and (elements.min() < 0 or elements.max() >= len(nodes)):
            raise ValueError("elements index nodes outside 0..N-1")
        if labels.shape != (len(elements),):
            raise ValueError(f"labels must have shape ({len(elements)},), got {labels.shape}")
        if elements.size and (tet_volumes(nodes, elements) <= 0).any():
            raise ValueError("elements must be positively oriented with non-zero volume")
        for name, value in (("nodes", nodes), ("elements", elements), ("labels", labels)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def n_nodes(self) -> int:
        return int(len(self.nodes))

    @property
    def n_elements(self) -> int:
        return int(len(self.elements))

    def element_volumes(self) -> np.ndarray:
        """Volume of each tetrahedron (E,) [m^3]."""
        return tet_volumes(self.nodes, self.elements)

    def volume(self) -> float:
        """Total volume [m^3]."""
        return float(self.element_volumes().sum())


#: a target edge this many times the surface's extent is refused (a unit mistake)
_EDGE_OVER_EXTENT = 10.0


def _check_edge_fits(max_edge: float | None, extent: float) -> None:
    """Refuse a target edge [m] ``_EDGE_OVER_EXTENT`` times the surface's largest extent
    [m] or more: such a mesh has no interior, and the usual cause is a surface loaded in
    the wrong unit (a file in micrometres read as nanometres is 1000 times too small)."""
    if max_edge is not None and max_edge >= _EDGE_OVER_EXTENT * extent:
        raise ValueError(
            f"the target edge {max_edge:.3g} m (length_scale or max_volume) is "
            f"{max_edge / extent:.0f} times the surface's largest extent {extent:.3g} m: "
            "check the unit the surface was loaded with (a file in um read as nm is 1000 "
            "times too small), or give a length_scale below the cell's size"
        )


def tetrahedralize(
    geometry: SurfaceMesh | CompartmentModel,
    *,
    max_volume: float | None = None,
    length_scale: float | None = None,
    method: str = "netgen",
    thin_part_cells: float | None = 3.0,
    volume_tolerance: float = 0.02,
    envelope: float | None = None,
    tetwild_options: dict | None = None,
    time_budget: float | str | None = "default",
    allow_multiple_bodies: bool = False,
    strict: bool = False,
) -> VolumeMesh:
    """Fill closed surfaces with tetrahedra, labelled by compartment.

    geometry: a closed surface [m] (several disjoint or nested bodies allowed: each body
    becomes a compartment) or a :class:`CompartmentModel`.
    max_volume: largest tetrahedron volume [m^3] (converted to the edge of a regular
    tetrahedron of that volume).  length_scale: target largest edge [m].  With netgen and
    tetgen, surface edges longer than the target are first split at their midpoints (the
    geometry is unchanged); without either, the surface triangles set the resolution.
    method: "netgen" (default), "tetwild" or "tetgen" (see docs/meshing.md).
    thin_part_cells: resolve thin parts with about this many elements across the local
    thickness (local sizing from ray-cast thickness; netgen only, the other methods resolve
    thin parts through the surface triangles or ``envelope``); None disables it.
    volume_tolerance: largest accepted relative difference between the tetrahedral and
    the surface volume [1] (a VolumeFidelityError is raised beyond it).
    envelope: tetwild only: largest distance of the meshed boundary from the input surface
    [m] (default 1e-4 of the bounding-box diagonal); must stay well below the thinnest part.
    tetwild_options: tetwild only: fTetWild settings passed on (``stop_energy``,
    ``num_opt_iter``, ``coarsen``, ``num_threads``, ...; defaults in TETWILD_DEFAULTS).
    time_budget: wall-time limit of the mesher [s]; it then runs in a child process that is
    killed when the budget is spent (MesherTimeoutError naming the next route); None runs
    it in this process without a limit; "default": DEFAULT_TIME_BUDGET (600 s for tetwild,
    whose optimisation loop can run for an hour; no limit for netgen and tetgen).
    allow_multiple_bodies: accept a surface of several bodies (each a compartment), as in
    check_surface; refused otherwise (MultipleBodiesError).
    strict: raise UnresolvedThinPartError instead of warning when more than half of the
    volume lies in tetrahedra without an interior node.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    check_bodies(geometry, allow_multiple_bodies)
    model = _model(geometry, method)
    scale = max(s.extent() for s in model.surfaces)
    scaled = scaled_model(model, scale)
    max_edge = target_edge(max_volume, length_scale)
    _check_edge_fits(max_edge, scale)
    if max_edge is not None and method != "tetwild":
        scaled = refine_surfaces(scaled, max_edge / scale)
    local = None
    if thin_part_cells is not None:
        if not thin_part_cells > 0:
            raise ValueError(f"thin_part_cells must be positive, got {thin_part_cells!r}")
        if method == "netgen":  # the other back-ends take no local sizes
            local = local_sizes(scaled, 1.0 / float(thin_part_cells))
    start = time.perf_counter()
    options = {} if envelope is None else {"envelope": _positive_length(envelope) / scale}
    if tetwild_options:
        options["options"] = dict(tetwild_options)
    if options and method != "tetwild":
        raise ValueError("envelope and tetwild_options apply to method='tetwild' only")
    args = (scaled, None if max_edge is None else max_edge / scale, local)
    if isinstance(time_budget, str):
        if time_budget != "default":
            raise ValueError(f"time_budget must be seconds, None or 'default', got {time_budget!r}")
        time_budget = DEFAULT_TIME_BUDGET.get(method)
    with native_output_to_log(logger):  # netgen prints warnings on descriptor 1
        nodes, elements, labels = run_with_budget(
            method, BACKENDS[method], args, options, time_budget
        )
    seconds = time.perf_counter() - start
    nodes = np.asarray(nodes, dtype=np.float64) * scale
    elements = np.asarray(elements, dtype=np.int64)
    if len(elements) == 0:
        raise MesherError(f"{method} produced no tetrahedra")
    negative = tet_volumes(nodes, elements) < 0
    elements[negative] = elements[negative][:, [0, 2, 1, 3]]
    used, local_index = np.unique(elements, return_inverse=True)
    nodes, elements = nodes[used], local_index.reshape(-1, 4)
    quality = mesh_quality(nodes, elements, labels, model, method, seconds)
    logger.info("tetrahedralize: %s", quality.summary())
    if method in EXACT_BOUNDARY and max(quality.volume_error, quality.area_error) > 1e-6:
        raise MesherError(
            f"{method} did not fill the volume exactly (volume error {quality.volume_error:.2e},"
            f" boundary area error {quality.area_error:.2e}): meshing failed in part of the "
            "domain, usually at sliver surface triangles; remesh the surface first "
            "(remesh_surface(surface, max_edge=...)) or try method='tetwild'"
        )
    if quality.min_radius_ratio < 1e-3:
        logger.warning(
            "tetrahedralize: near-degenerate tetrahedra (radius ratio %.1e, "
            "dihedral %.2f deg), usually inherited from sliver surface triangles; remesh "
            "the surface first: remesh_surface(surface, max_edge=...)",
            quality.min_radius_ratio,
            quality.min_dihedral,
        )
    check_interior_nodes(nodes, elements, strict)
    if quality.volume_error > volume_tolerance:
        raise VolumeFidelityError(
            f"the {method} mesh volume {quality.volume:.6g} m^3 differs from the surface "
            f"volume {quality.surface_volume:.6g} m^3 by {100 * quality.volume_error:.2f} % "
            f"(> {100 * volume_tolerance:g} %); thin parts were probably lost: use a smaller "
            "length_scale, a larger thin_part_cells, or method='netgen'"
        )
    return VolumeMesh(nodes, elements, labels, quality)


def _positive_length(value: float) -> float:
    if not value > 0:
        raise ValueError(f"envelope must be a positive length [m], got {value!r}")
    return float(value)


def _model(geometry: SurfaceMesh | CompartmentModel, method: str) -> CompartmentModel:
    """The compartment model; with tetwild, a surface that fails the checks is meshed as one
    compartment whose reference volume is its signed (winding-number) volume."""
    if isinstance(geometry, CompartmentModel):
        return geometry
    if not isinstance(geometry, SurfaceMesh):
        raise TypeError(
            f"geometry must be a SurfaceMesh or CompartmentModel, got {type(geometry).__name__}"
        )
    if method == "tetwild":
        report = check_surface(geometry, allow_multiple_bodies=True)
        if not report.ok:
            logger.warning(
                "tetrahedralize: meshing an imperfect surface with tetwild (%s); "
                "compartments are not separated",
                ", ".join(report.problems),
            )
            centre = geometry.vertices.mean(axis=0)
            return CompartmentModel(
                (geometry,), (-1,), (geometry.signed_volume(),), centre[None, :], ("surface",)
            )
    return build_compartments(geometry)


def mesh_quality(
    nodes: np.ndarray,
    elements: np.ndarray,
    labels: np.ndarray,
    model: CompartmentModel,
    method: str = "",
    seconds: float = 0.0,
) -> TetQuality:
    """Quality report of a tetrahedral mesh against the model it was built from."""
    angles = np.degrees(dihedral_angles(nodes, elements))
    ratios = radius_ratios(nodes, elements)
    volumes = tet_volumes(nodes, elements)
    n = model.n_compartments
    per_label = np.bincount(labels, weights=volumes, minlength=n)
    outer = [i for i, p in enumerate(model.parents) if p < 0]
    return TetQuality(
        method=method,
        n_nodes=len(nodes),
        n_elements=len(elements),
        min_dihedral=float(angles.min()),
        max_dihedral=float(angles.max()),
        min_radius_ratio=float(ratios.min()),
        mean_radius_ratio=float(ratios.mean()),
        volume=float(volumes.sum()),
        surface_volume=float(model.total_volume()),
        boundary_area=triangle_area(nodes, boundary_faces(elements)),
        surface_area=float(sum(model.surfaces[i].area() for i in outer)),
        compartment_volumes=tuple(float(v) for v in per_label[:n]),
        compartment_surface_volumes=tuple(float(v) for v in model.volumes),
        seconds=seconds,
    )
