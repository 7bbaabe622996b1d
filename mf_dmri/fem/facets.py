"""Facets of a labelled simplex mesh: outer boundary, compartment interfaces, conformity.

A facet is an edge (triangles, d = 2) or a triangle (tetrahedra, d = 3), keyed by its sorted
node indices.  In a conforming labelled mesh every facet belongs to one element (outer
boundary) or to two (interior: same label; interface: two labels).  The P1 surface mass
matrix of a facet of measure ``a`` is ``a / ((d)(d+1)) * (1 + delta_ij)`` (the integral of
products of the linear hat functions over the facet).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class FacetSets:
    """The boundary and interface facets of a labelled mesh.

    Args:
        boundary: (B, d) node indices of outer-boundary facets.
        boundary_label: (B,) label of the element owning each boundary facet.
        interface: (I, d) node indices of interface facets.
        interface_labels: (I, 2) labels (lower, higher) of the two elements sharing a facet.
    """

    boundary: np.ndarray
    boundary_label: np.ndarray
    interface: np.ndarray
    interface_labels: np.ndarray


def _element_facets(elements: np.ndarray) -> np.ndarray:
    """(E, d+1, d) sorted node indices of the facets of every element."""
    corners = elements.shape[1]
    facets = [np.delete(elements, i, axis=1) for i in range(corners)]
    return np.sort(np.stack(facets, axis=1), axis=2)


def classify_facets(elements: np.ndarray, labels: np.ndarray) -> FacetSets:
    """Outer-boundary and interface facets of a checked mesh (see the module docstring)."""
    facets = _element_facets(elements)
    corners, width = facets.shape[1], facets.shape[2]
    flat = facets.reshape(-1, width)
    owner = np.repeat(labels, corners)
    unique, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if (counts > 2).any():
        bad = unique[np.argmax(counts > 2)]
        raise ValueError(
            f"facet {bad.tolist()} is shared by more than two elements (non-manifold mesh); "
            "remesh the geometry"
        )
    positions = np.argsort(inverse, kind="stable")  # flat facets grouped by unique facet
    starts = np.searchsorted(inverse[positions], np.arange(unique.shape[0]))
    boundary_ids = np.flatnonzero(counts == 1)
    paired = np.flatnonzero(counts == 2)
    label_a = owner[positions[starts[paired]]]
    label_b = owner[positions[starts[paired] + 1]]
    crossing = label_a != label_b
    pair = np.sort(np.stack([label_a[crossing], label_b[crossing]], axis=1), axis=1)
    return FacetSets(
        boundary=unique[boundary_ids],
        boundary_label=owner[positions[starts[boundary_ids]]],
        interface=unique[paired[crossing]],
        interface_labels=pair.astype(np.int64),
    )


def facet_measures(points: np.ndarray, facets: np.ndarray) -> np.ndarray:
    """Length (d = 2) or area (d = 3) of every facet [m^(d-1)]."""
    if facets.shape[0] == 0:
        return np.zeros(0)
    edges = points[facets[:, 1:]] - points[facets[:, :1]]
    if points.shape[1] == 2:
        return np.linalg.norm(edges[:, 0], axis=1)
    return 0.5 * np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=1)


def facet_mass_blocks(points: np.ndarray, facets: np.ndarray) -> np.ndarray:
    """(F, d, d) P1 surface mass matrices of the facets [m^(d-1)]."""
    width = facets.shape[1]
    reference = (np.ones((width, width)) + np.eye(width)) / (width * (width + 1))
    return facet_measures(points, facets)[:, None, None] * reference


def check_conforming(points: np.ndarray, facets: FacetSets, mesh_size: float) -> None:
    """Raise if two compartments touch without sharing their interface nodes.

    Such a non-conforming interface (duplicated coincident nodes, or hanging nodes of one
    side on a facet of the other) shows up as outer-boundary facets of both labels: the
    centroid of a boundary facet of one label lies on a boundary facet of another label."""
    boundary, label = facets.boundary, facets.boundary_label
    if np.unique(label).size < 2:
        return
    centroids = points[boundary].mean(axis=1)
    for own in np.unique(label):
        others = np.flatnonzero(label != own)
        rows = np.flatnonzero(label == own)
        neighbours = min(4, others.size)
        _, index = cKDTree(centroids[others]).query(
            centroids[rows], k=[*range(1, neighbours + 1)], distance_upper_bound=mesh_size
        )
        for column in range(neighbours):
            found = index[:, column] < others.size
            facet = others[np.where(found, index[:, column], 0)]
            hits = found & _on_facets(centroids[rows], points[boundary[facet]], mesh_size)
            if hits.any():
                raise ValueError(_NON_CONFORMING.format(a=own, b=label[facet[np.argmax(hits)]]))


def _on_facets(targets: np.ndarray, corners: np.ndarray, h: float) -> np.ndarray:
    """Whether each point (n, d) lies on its simplex facet (n, d, d) (within 1e-6 h)."""
    base = corners[:, 0]
    span = corners[:, 1:] - base[:, None]  # (n, d-1, d)
    rel = targets - base
    gram = np.einsum("nad,nbd->nab", span, span)
    coeffs = np.linalg.solve(gram, np.einsum("nad,nd->na", span, rel)[..., None])[..., 0]
    distance = np.linalg.norm(np.einsum("na,nad->nd", coeffs, span) - rel, axis=1)
    inside = (coeffs >= -1e-9).all(axis=1) & (coeffs.sum(axis=1) <= 1 + 1e-9)
    return (distance <= 1e-6 * h) & inside


_NON_CONFORMING = (
    "compartments {a} and {b} touch without sharing nodes (a non-conforming interface): "
    "permeable interfaces need a conforming mesh in which both sides use the same interface "
    "nodes; mesh the compartments together (e.g. mf_dmri.geometry.tetrahedralize of a "
    "CompartmentModel) or merge coincident nodes"
)
