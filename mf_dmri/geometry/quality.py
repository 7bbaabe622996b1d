"""Element quality of tetrahedral meshes: volumes, dihedral angles, radius ratios, boundary."""

from __future__ import annotations

import numpy as np


def tet_volumes(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Signed volume of each tetrahedron (E,) [m^3]; positive for right-handed order."""
    a, b, c, d = (nodes[elements[:, k]] for k in range(4))
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a) / 6


def _face_normals(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """Outward unit normals (E, 4, 3) of the face opposite each corner (positive tets)."""
    corners = nodes[elements]
    normals = np.empty_like(corners)
    for k in range(4):
        i, j, m = [c for c in range(4) if c != k]
        n = np.cross(corners[:, j] - corners[:, i], corners[:, m] - corners[:, i])
        sign = np.sign(np.einsum("ij,ij->i", n, corners[:, i] - corners[:, k]))
        normals[:, k] = n * sign[:, None]
    return normals / np.linalg.norm(normals, axis=2, keepdims=True)


def dihedral_angles(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """The six dihedral angles of each tetrahedron (E, 6) [rad]."""
    normals = _face_normals(nodes, elements)
    pairs = [(k, m) for k in range(4) for m in range(k + 1, 4)]
    cosines = np.stack(
        [np.einsum("ij,ij->i", normals[:, k], normals[:, m]) for k, m in pairs], axis=1
    )
    return np.pi - np.arccos(np.clip(cosines, -1.0, 1.0))


def radius_ratios(nodes: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """3 r_inscribed / R_circumscribed of each tetrahedron (E,): 1 regular, 0 flat."""
    corners = nodes[elements]
    a, b, c = (corners[:, k] - corners[:, 0] for k in (1, 2, 3))
    six_volume = np.einsum("ij,ij->i", a, np.cross(b, c))
    circum = (
        np.einsum("ij,ij->i", a, a)[:, None] * np.cross(b, c)
        + np.einsum("ij,ij->i", b, b)[:, None] * np.cross(c, a)
        + np.einsum("ij,ij->i", c, c)[:, None] * np.cross(a, b)
    )
    circumradius = np.linalg.norm(circum, axis=1) / np.abs(2 * six_volume)
    face_area = 0.0
    for k in range(4):
        i, j, m = [q for q in range(4) if q != k]
        face_area = face_area + 0.5 * np.linalg.norm(
            np.cross(corners[:, j] - corners[:, i], corners[:, m] - corners[:, i]), axis=1
        )
    inradius = np.abs(six_volume) / 2 / face_area
    return 3 * inradius / circumradius


def boundary_faces(elements: np.ndarray) -> np.ndarray:
    """Faces (B, 3) belonging to exactly one tetrahedron (outer boundary)."""
    faces = np.concatenate(
        [
            elements[:, [1, 2, 3]],
            elements[:, [0, 3, 2]],
            elements[:, [0, 1, 3]],
            elements[:, [0, 2, 1]],
        ]
    )
    _, inverse, counts = np.unique(
        np.sort(faces, axis=1), axis=0, return_inverse=True, return_counts=True
    )
    return faces[counts[inverse.reshape(-1)] == 1]


def interface_faces(elements: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Interior faces (K, 3) whose two tetrahedra carry different labels."""
    faces = np.concatenate(
        [
            elements[:, [1, 2, 3]],
            elements[:, [0, 3, 2]],
            elements[:, [0, 1, 3]],
            elements[:, [0, 2, 1]],
        ]
    )
    owner = np.tile(np.asarray(labels), 4)
    keys = np.sort(faces, axis=1)
    order = np.lexsort(keys.T[::-1])
    keys, owner, faces = keys[order], owner[order], faces[order]
    same_as_next = np.all(keys[1:] == keys[:-1], axis=1)
    differ = same_as_next & (owner[1:] != owner[:-1])
    return faces[:-1][differ]


def triangle_area(nodes: np.ndarray, faces: np.ndarray) -> float:
    """Total area of triangles (F, 3) [m^2]."""
    tri = nodes[faces]
    return float(
        0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    )
