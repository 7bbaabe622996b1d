"""Tetrahedral mesher back-ends.  Each takes a :class:`CompartmentModel` whose coordinates
were scaled to order one, and returns (nodes (N,3), elements (E,4), labels (E,)) in the same
scaled coordinates.  Labels index the model's compartments.

- ``netgen`` (netgen-mesher, LGPL-2.1): keeps the input surfaces exactly; nested regions via
  face descriptors (domain inside / outside every surface).  The default.
- ``tetwild`` (pytetwild = fTetWild, MPL-2.0): robust to self-intersections and small gaps,
  but moves the boundary within an envelope (volume error ~0.1 %); disjoint bodies only.
- ``tetgen`` (tetgen, AGPL-3.0: optional extra): keeps the surfaces exactly; regions via
  region points.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mf_dmri.geometry.compartments import CompartmentModel, winding_numbers
from mf_dmri.geometry.errors import MesherError
from mf_dmri.geometry.surface import SurfaceMesh, concatenate

logger = logging.getLogger(__name__)

METHODS = ("netgen", "tetwild", "tetgen")


def _import(module: str, package: str, licence: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        missing = getattr(exc, "name", None) or ""
        if missing and missing.split(".")[0] != module.split(".")[0]:
            raise MesherError(
                f"{package} is installed but its dependency {missing} is missing ({exc}); "
                f"`pip install {missing}` (or `pip install 'mf_dmri[mesh]'`)"
            ) from exc
        raise MesherError(
            f"the {module} mesher is not installed ({exc}); `pip install {package}` "
            f"({licence}) or choose another method"
        ) from exc


def mesh_netgen(
    model: CompartmentModel,
    max_edge: float | None,
    local_sizes: tuple[np.ndarray, np.ndarray] | None,
    envelope: float | None = None,
):
    meshing = _import("netgen.meshing", "netgen-mesher", "LGPL-2.1")
    meshing.SetMessageImportance(0)
    mesh = meshing.Mesh(dim=3)
    offset = 0
    for index, surface in enumerate(model.surfaces):
        outside = model.parents[index] + 1
        descriptor = mesh.Add(
            meshing.FaceDescriptor(surfnr=index + 1, domin=index + 1, domout=outside, bc=index + 1)
        )
        mesh.AddPoints(np.ascontiguousarray(surface.vertices, dtype=np.float64))
        mesh.AddElements(
            dim=2,
            index=descriptor,
            data=np.ascontiguousarray(surface.faces + offset, dtype=np.int32),
            base=0,
        )
        offset += surface.n_vertices
    if local_sizes is not None:
        for point, size in zip(*local_sizes, strict=True):
            mesh.RestrictLocalH(meshing.Pnt(*map(float, point)), float(size))
    try:
        mesh.GenerateVolumeMesh(maxh=1e10 if max_edge is None else float(max_edge))
    except Exception as exc:
        raise MesherError(
            f"netgen failed to fill the volume ({exc}); the surface may be too irregular: try "
            "method='tetwild' or improve the surface triangles"
        ) from exc
    data = mesh.Elements3D().NumPy()
    if len(data) == 0:
        raise MesherError(
            "netgen produced no tetrahedra (inward or open surface?); validate "
            "the surface with check_surface, or try method='tetwild'"
        )
    return (
        mesh.Coordinates().copy(),
        data["nodes"].astype(np.int64) - 1,
        data["index"].astype(np.int64) - 1,
    )


def mesh_tetgen(
    model: CompartmentModel,
    max_edge: float | None,
    local_sizes: tuple[np.ndarray, np.ndarray] | None,
    envelope: float | None = None,
):
    tetgen = _import("tetgen", "tetgen", "AGPL-3.0")
    surface = concatenate(list(model.surfaces))
    generator = tetgen.TetGen(np.asarray(surface.vertices), np.asarray(surface.faces, np.int32))
    max_volume = -1.0 if max_edge is None else max_edge**3 / (6 * np.sqrt(2))
    for index, point in enumerate(model.interior_points):
        generator.add_region(index + 1, point, max_volume)
    switches = "pzq1.4/15AaQ"  # plc, 0-based, quality, region attributes, volumes, quiet
    try:
        nodes, elements, attributes = generator.tetrahedralize(switches=switches)[:3]
    except Exception as exc:
        raise MesherError(f"tetgen failed ({exc}); try method='netgen' or 'tetwild'") from exc
    labels = np.asarray(generator.attributes if attributes is None else attributes).reshape(-1)
    return np.asarray(nodes), np.asarray(elements, np.int64), labels.astype(np.int64) - 1


#: fTetWild's optimisation settings used unless ``tetwild_options`` overrides them
TETWILD_DEFAULTS = {"stop_energy": 10.0, "num_opt_iter": 80, "num_threads": 0}
#: the file fTetWild leaves in the working directory
_TRACKED_SURFACE = "__tracked_surface.stl"


def mesh_tetwild(
    model: CompartmentModel,
    max_edge: float | None,
    local_sizes: tuple[np.ndarray, np.ndarray] | None,
    envelope: float | None = None,
    options: dict | None = None,
):
    if any(parent >= 0 for parent in model.parents):
        raise MesherError(
            "method='tetwild' meshes disjoint bodies only (no nested "
            "compartments); use method='netgen' for nested compartments"
        )
    pytetwild = _import("pytetwild", "pytetwild", "MPL-2.0")
    surface = concatenate(list(model.surfaces))
    diagonal = float(np.linalg.norm(np.ptp(surface.vertices, axis=0)))
    epsilon = 1e-4 if envelope is None else envelope / diagonal
    kwargs = {"edge_length_fac": 0.05} if max_edge is None else {"edge_length_abs": float(max_edge)}
    settings = {**TETWILD_DEFAULTS, **(options or {})}
    # fTetWild writes its tracked surface into the working directory: removed after it
    tracked = Path(_TRACKED_SURFACE)
    existed = tracked.exists()
    try:
        nodes, elements = pytetwild.tetrahedralize(
            np.array(surface.vertices, dtype=np.float64),
            np.array(surface.faces, dtype=np.int32),
            quiet=True,
            epsilon=epsilon,
            **kwargs,
            **settings,
        )
    finally:
        if not existed:
            tracked.unlink(missing_ok=True)
    elements = np.asarray(elements, np.int64)
    labels = (
        np.zeros(len(elements), dtype=np.int64)
        if model.n_compartments == 1
        else _label_components(np.asarray(nodes), elements, model)
    )
    logger.debug("tetwild: %d tets, diagonal %.3g", len(elements), diagonal)
    return np.asarray(nodes), elements, labels


def _label_components(
    nodes: np.ndarray, elements: np.ndarray, model: CompartmentModel
) -> np.ndarray:
    """Label connected tet components by the body containing one of their centroids."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    rows = np.repeat(np.arange(len(elements)), 4)
    incidence = sparse.csr_matrix(
        (np.ones(rows.size), (rows, elements.reshape(-1))), shape=(len(elements), len(nodes))
    )
    n_components, component = connected_components(incidence @ incidence.T, directed=False)
    labels = np.empty(len(elements), dtype=np.int64)
    for index in range(n_components):
        members = np.nonzero(component == index)[0]
        centroid = nodes[elements[members[0]]].mean(axis=0)
        inside = [winding_numbers(s, centroid[None])[0] for s in model.surfaces]
        labels[members] = int(np.argmax(inside))
    return labels


def scaled_model(model: CompartmentModel, scale: float) -> CompartmentModel:
    """The model with every coordinate divided by ``scale`` [m]."""
    return CompartmentModel(
        tuple(SurfaceMesh(s.vertices / scale, s.faces) for s in model.surfaces),
        model.parents,
        tuple(v / scale**3 for v in model.volumes),
        model.interior_points / scale,
        model.names,
    )


BACKENDS = {"netgen": mesh_netgen, "tetwild": mesh_tetwild, "tetgen": mesh_tetgen}
