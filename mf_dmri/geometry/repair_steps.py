"""The topological steps of surface repair, each a pure function on (vertices, faces).

Faces are read with the winding-number meaning of a triangle soup: a face adds +1/2 to
the winding number just behind it, its reverse -1/2.  So two faces on the same three
vertices with opposite winding (a double-sided sheet, the two sides of a fin) cancel and
are both removed, while repeated faces with the same winding describe one wall and are
kept once.  Bodies of (near) zero volume are removed, inward bodies inside another body
are cavities (filled: removed), other inward bodies are inverted.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, connected_components
from scipy.spatial import cKDTree

from mf_dmri.geometry.topology import directed_edges, edge_table, face_components


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop unused vertices and renumber the faces."""
    used, local = np.unique(faces, return_inverse=True)
    return vertices[used], local.reshape(-1, 3)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Divergence-theorem volume [m^3] about the vertex centroid (winding-number integral
    for a closed surface)."""
    if len(faces) == 0:
        return 0.0
    tri = vertices[faces] - vertices.mean(axis=0)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6)


def incident_edge_lengths(
    vertices: np.ndarray, faces: np.ndarray, statistic: str = "median"
) -> np.ndarray:
    """Median (or longest: ``statistic="max"``) length of the edges at each vertex (V,)
    [m] (inf for unused vertices)."""
    edges, _, _ = edge_table(faces)
    lengths = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    ends = np.concatenate([edges[:, 0], edges[:, 1]])
    values = np.concatenate([lengths, lengths])
    order = np.lexsort((values, ends))
    ends, values = ends[order], values[order]
    starts = np.searchsorted(ends, np.arange(len(vertices)))
    stops = np.searchsorted(ends, np.arange(len(vertices)), side="right")
    median = np.full(len(vertices), np.inf)
    has = stops > starts
    pick = stops[has] - 1 if statistic == "max" else (starts[has] + stops[has] - 1) // 2
    median[has] = values[pick]
    return median


def merge_close_vertices(vertices: np.ndarray, faces: np.ndarray, relative: float):
    """Merge vertices closer than ``relative`` times the smaller of their longest incident
    edges (a near-duplicate vertex has one tiny edge and regular ones).  Returns
    (vertices, faces, merged vertex count, positions merged (k, 3))."""
    local = incident_edge_lengths(vertices, faces, "max")
    finite = np.isfinite(local)
    if finite.sum() < 2:
        return vertices, faces, 0, np.zeros((0, 3))
    radius = relative * float(local[finite].max())
    pairs = cKDTree(vertices).query_pairs(radius, output_type="ndarray")
    if len(pairs):
        distance = np.linalg.norm(vertices[pairs[:, 0]] - vertices[pairs[:, 1]], axis=1)
        limit = relative * np.minimum(local[pairs[:, 0]], local[pairs[:, 1]])
        pairs = pairs[distance <= limit]
    if len(pairs) == 0:
        return vertices, faces, 0, np.zeros((0, 3))
    graph = sparse.coo_matrix(
        (np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(vertices),) * 2
    )
    _, labels = connected_components(graph, directed=False)
    _, representative = np.unique(labels, return_index=True)
    target = representative[labels]
    merged = int((target != np.arange(len(vertices))).sum())
    where = vertices[np.unique(target[pairs[:, 0]])]
    vertices, faces = compact(vertices, target[faces])
    return vertices, faces, merged, where


def cancel_faces(faces: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Remove faces with a repeated corner, cancel opposite faces on the same vertices and
    keep one of same-winding repeats.  Returns the faces and, per kind, the indices (into
    the input) of the faces removed: "collapsed", "double_sided", "repeated"."""
    collapsed = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])
    )
    index = np.nonzero(~collapsed)[0]
    kept = faces[index]
    rolled = kept.copy()
    for _ in range(2):  # rotate each face so that its smallest vertex comes first
        shift = np.argmin(rolled, axis=1) != 0
        rolled[shift] = np.roll(rolled[shift], -1, axis=1)
    sign = np.where(rolled[:, 1] < rolled[:, 2], 1, -1)
    _, group, count = np.unique(
        np.sort(kept, axis=1), axis=0, return_inverse=True, return_counts=True
    )
    group = group.reshape(-1)
    net = np.bincount(group, weights=sign, minlength=len(count)).astype(np.int64)
    agrees = np.nonzero(np.sign(net[group]) == sign)[0]
    first = np.full(len(count), -1)
    first[group[agrees[::-1]]] = agrees[::-1]  # the first face agreeing with the net winding
    keep = np.sort(first[net != 0])
    cancelled = (net == 0)[group]
    repeated = ~cancelled & ~np.isin(np.arange(len(kept)), keep)
    removed = {
        "collapsed": np.nonzero(collapsed)[0],
        "double_sided": index[cancelled],
        "repeated": index[repeated],
    }
    return kept[keep], removed


def consistent_winding(faces: np.ndarray) -> tuple[np.ndarray, int]:
    """Flip faces so that neighbours across manifold edges are wound consistently (the
    minority of each body is flipped).  Returns (faces, number flipped)."""
    if len(faces) == 0:
        return faces, 0
    _, inverse, counts = edge_table(faces)
    rows = np.argsort(inverse, kind="stable")
    owner = inverse[rows]
    starts = np.searchsorted(owner, np.nonzero(counts == 2)[0])
    first, second = rows[starts], rows[starts + 1]
    directed = directed_edges(faces)
    same = directed[first, 0] == directed[second, 0]
    face_a, face_b = first // 3, second // 3
    n_faces = len(faces)
    relation = sparse.coo_matrix(
        (np.where(same, -1, 1), (face_a, face_b)), shape=(n_faces, n_faces)
    ).tocsr()
    relation = relation + relation.T
    n_components, labels = connected_components(relation, directed=False)
    sign = _orientation_classes(face_a, face_b, same, labels, n_faces)
    for component in np.unique(labels[sign == 0]):  # non-orientable: along a BFS tree
        root = int(np.argmax(labels == component))
        order, parent = breadth_first_order(relation, root, directed=False)
        steps = np.asarray(relation[parent[order[1:]], order[1:]]).reshape(-1).tolist()
        signs, position = [1], {root: 0}
        for k, (face, step) in enumerate(zip(order[1:].tolist(), steps), start=1):
            signs.append(signs[position[int(parent[face])]] * step)
            position[face] = k
        sign[order] = signs
    # the majority of each body keeps its winding (a tie: the class of its first face)
    negative = np.bincount(labels, weights=sign < 0, minlength=n_components)
    size = np.bincount(labels, minlength=n_components)
    sign = np.where((negative * 2 > size)[labels], -sign, sign)
    flip = sign < 0
    faces = faces.copy()
    faces[flip] = faces[flip][:, ::-1]
    return faces, int(flip.sum())


def _orientation_classes(face_a, face_b, same, labels, n_faces) -> np.ndarray:
    """Sign (F,) of each face relative to the first face of its component (+1: wound
    like it, -1: opposite), from the components of the doubled graph (face, kept) -
    (face, flipped): neighbours wound the same way (``same`` False) join the kept and
    flipped copies alike, neighbours wound the same way across an edge cross over.  0 for
    the faces of a non-orientable component (both copies joined)."""
    across = np.where(same, n_faces, 0)
    rows = np.concatenate([face_a, face_a + n_faces])
    cols = np.concatenate([face_b + across, face_b + n_faces - across])
    graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(2 * n_faces, 2 * n_faces))
    _, doubled = connected_components(graph, directed=False)
    kept, flipped = doubled[:n_faces], doubled[n_faces:]
    first = np.unique(labels, return_index=True)[1][labels]
    sign = np.where(kept == kept[first], 1, -1)
    sign[kept == flipped] = 0
    return sign


def body_volumes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body label of each face (F,) and the signed volume of each body [m^3]."""
    labels = face_components(faces, len(vertices))
    tri = vertices[faces] - vertices.mean(axis=0)
    per_face = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6
    return labels, np.bincount(labels, weights=per_face)


def sort_bodies(vertices: np.ndarray, faces: np.ndarray, flat_relative: float):
    """Remove flat bodies (|volume| below ``flat_relative`` x area x mean edge length) and
    cavities (inward bodies inside another body), invert the other inward bodies.
    Returns (faces, {"flat": faces removed, "cavity": faces removed, "inverted": faces
    flipped}, {kind: volumes [m^3]}) with face indices into the input."""
    from mf_dmri.geometry.compartments import winding_numbers
    from mf_dmri.geometry.surface import SurfaceMesh

    labels, volumes = body_volumes(vertices, faces)
    tri = vertices[faces]
    areas = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    edge = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).mean(axis=1)
    body_area = np.bincount(labels, weights=areas)
    body_edge = np.bincount(labels, weights=edge) / np.bincount(labels)
    flat = np.abs(volumes) < flat_relative * body_area * body_edge
    inward = np.nonzero((volumes < 0) & ~flat)[0]
    cavity = np.zeros(len(volumes), dtype=bool)
    solid = np.nonzero((volumes > 0) & ~flat)[0]
    for body in inward:
        point = vertices[faces[labels == body][0, 0]][None, :]
        for other in solid:
            if winding_numbers(SurfaceMesh(vertices, faces[labels == other]), point)[0] > 0.5:
                cavity[body] = True
                break
    faces = faces.copy()
    invert = np.isin(labels, inward[~cavity[inward]])
    faces[invert] = faces[invert][:, ::-1]
    drop = np.isin(labels, np.nonzero(flat | cavity)[0])
    changed = {
        "flat": np.nonzero(np.isin(labels, np.nonzero(flat)[0]))[0],
        "cavity": np.nonzero(np.isin(labels, np.nonzero(cavity)[0]))[0],
        "inverted": np.nonzero(invert)[0],
    }
    body_change = {
        "flat": volumes[flat],
        "cavity": volumes[cavity],
        "inverted": volumes[inward[~cavity[inward]]],
    }
    return faces[~drop], changed, body_change


def nonmanifold_faces(faces: np.ndarray) -> np.ndarray:
    """Faces at an edge shared by more than two faces, or at a vertex whose faces form
    more than one fan (a bow-tie), as a boolean mask (F,)."""
    _, inverse, counts = edge_table(faces)
    bad = np.zeros(len(faces), dtype=bool)
    over = counts[inverse] > 2
    bad[np.nonzero(over)[0] // 3] = True
    return bad | np.isin(np.arange(len(faces)), _bowtie_faces(faces))


def _bowtie_faces(faces: np.ndarray) -> np.ndarray:
    """Faces at vertices where the faces around the vertex form several fans."""
    n = len(faces)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, inverse, counts = edge_table(faces)
    directed = directed_edges(faces)
    rows = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[rows], np.nonzero(counts == 2)[0])
    first, second = rows[starts], rows[starts + 1]
    links = []
    for end in (0, 1):  # link the corners of both faces at each end of a manifold edge
        vertex = directed[first, end]
        corner_a = 3 * (first // 3) + (faces[first // 3] == vertex[:, None]).argmax(axis=1)
        corner_b = 3 * (second // 3) + (faces[second // 3] == vertex[:, None]).argmax(axis=1)
        links.append(np.stack([corner_a, corner_b], axis=1))
    links = np.concatenate(links)
    graph = sparse.coo_matrix(
        (np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(3 * n, 3 * n)
    )
    _, fan = connected_components(graph, directed=False)
    corner_vertex = faces.reshape(-1).astype(np.int64)
    # one int64 key per (vertex, fan) pair (np.unique(axis=0) is ~10x slower)
    keys = np.unique(corner_vertex * (3 * n) + fan)
    fans_per_vertex = np.bincount(keys // (3 * n), minlength=int(corner_vertex.max()) + 1)
    bowtie = fans_per_vertex[corner_vertex] > 1
    return np.unique(np.repeat(np.arange(n), 3)[bowtie])
