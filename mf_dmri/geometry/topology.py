"""Edge and connectivity bookkeeping of triangle surfaces (pure numpy/scipy)."""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from mf_dmri.geometry.surface import SurfaceMesh


def directed_edges(faces: np.ndarray) -> np.ndarray:
    """The three directed edges of every face, shape (3F, 2); row 3f+k belongs to face f."""
    return np.stack([faces, np.roll(faces, -1, axis=1)], axis=2).reshape(-1, 2)


def edge_table(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique undirected edges (E, 2), the edge of each directed edge (3F,), counts (E,)."""
    undirected = np.sort(directed_edges(faces), axis=1).astype(np.int64)
    n = undirected.max() + 1 if undirected.size else 1
    # one int64 key per edge sorts like the rows (np.unique(axis=0) is ~10x slower)
    keys, inverse, counts = np.unique(
        undirected[:, 0] * n + undirected[:, 1], return_inverse=True, return_counts=True
    )
    edges = np.stack([keys // n, keys % n], axis=1).reshape(-1, 2)
    return edges, inverse.reshape(-1), counts


def inconsistent_edges(faces: np.ndarray) -> np.ndarray:
    """Undirected manifold edges (K, 2) traversed in the same direction by both faces."""
    directed = directed_edges(faces)
    edges, inverse, counts = edge_table(faces)
    forward = (directed[:, 0] < directed[:, 1]).astype(np.int64)
    n_forward = np.bincount(inverse, weights=forward, minlength=len(edges))
    bad = (counts == 2) & (n_forward != 1)
    return edges[bad]


def face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Body index of every face: faces connected through shared vertices form one body."""
    n_faces = len(faces)
    if n_faces == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(n_faces), 3)
    incidence = sparse.csr_matrix(
        (np.ones(3 * n_faces), (rows, faces.reshape(-1))), shape=(n_faces, n_vertices)
    )
    adjacency = incidence @ incidence.T
    _, labels = connected_components(adjacency, directed=False)
    return labels.astype(np.int64)


def split_bodies(mesh: SurfaceMesh) -> list[SurfaceMesh]:
    """The connected bodies of a surface as separate meshes (unused vertices dropped)."""
    labels = face_components(mesh.faces, mesh.n_vertices)
    bodies = []
    for body in range(labels.max() + 1 if len(labels) else 0):
        faces = mesh.faces[labels == body]
        used, local = np.unique(faces, return_inverse=True)
        bodies.append(SurfaceMesh(mesh.vertices[used], local.reshape(-1, 3)))
    return bodies


def duplicate_vertex_groups(vertices: np.ndarray, tolerance: float) -> list[np.ndarray]:
    """Groups of vertex indices closer than ``tolerance`` [m] (each group has >= 2)."""
    from scipy.spatial import cKDTree

    if len(vertices) < 2:
        return []
    pairs = cKDTree(vertices).query_pairs(tolerance, output_type="ndarray")
    if len(pairs) == 0:
        return []
    graph = sparse.coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(vertices),) * 2
    )
    _, labels = connected_components(graph, directed=False)
    involved = np.unique(pairs)
    groups: dict[int, list[int]] = {}
    for vertex in involved:
        groups.setdefault(int(labels[vertex]), []).append(int(vertex))
    return [np.array(g, dtype=np.int64) for g in groups.values()]
