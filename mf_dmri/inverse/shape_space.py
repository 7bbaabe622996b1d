"""A low-dimensional space of closed shapes around a reference volume mesh.

Shapes are normal displacements of the reference surface, spanned by the smoothest
eigenvectors of its cotangent Laplace-Beltrami operator (on a sphere: the spherical
harmonics, degree by degree):

    x_b = x_b^ref + n_b * length_scale * sum_k c_k phi_k(b),

with the modes phi_k normalised to unit area-weighted RMS, so the coefficients c_k [-] are
relative displacement amplitudes.  The three fields n . e_x, n . e_y, n . e_z (normal
components of a rigid translation) are projected out: a PGSE signal cannot see the
position of a closed compartment, so translation is not a shape parameter.  The interior
nodes follow the boundary by harmonic extension (``mf_dmri.fem.extension``), so the
eigenbasis of every shape is differentiable with respect to the coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.fem.extension import HarmonicExtension
from mf_dmri.geometry import SurfaceMesh


def boundary_faces(elements: np.ndarray, boundary: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Outward-oriented boundary triangles (F, 3), indexing into ``boundary`` order."""
    el = np.asarray(elements)
    faces, opposite = [], []
    for drop in range(4):
        faces.append(np.delete(el, drop, axis=1))
        opposite.append(el[:, drop])
    faces, opposite = np.concatenate(faces), np.concatenate(opposite)
    keys = np.sort(faces, axis=1)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    outer = counts[inverse.reshape(-1)] == 1
    faces, opposite = faces[outer], opposite[outer]
    a, b, c = (nodes[faces[:, i]] for i in range(3))
    normal = np.cross(b - a, c - a)
    inward = (normal * (nodes[opposite] - a)).sum(1) > 0
    faces[inward] = faces[inward][:, [0, 2, 1]]
    position = np.full(len(nodes), -1)
    position[boundary] = np.arange(len(boundary))
    local = position[faces]
    if (local < 0).any():
        raise ValueError("a boundary face uses a node outside the extension's boundary set")
    return local


def cotangent_operator(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stiffness (B, B), lumped area (B,)) of the P1 Laplace-Beltrami operator."""
    count = len(vertices)
    stiffness = np.zeros((count, count))
    area = np.zeros(count)
    for corner in range(3):
        i, j, k = faces[:, corner], faces[:, (corner + 1) % 3], faces[:, (corner + 2) % 3]
        u, v = vertices[j] - vertices[i], vertices[k] - vertices[i]
        cross = np.linalg.norm(np.cross(u, v), axis=1)
        cot = (u * v).sum(1) / cross  # cotangent of the angle at i, opposite edge jk
        np.add.at(stiffness, (j, k), -0.5 * cot)
        np.add.at(stiffness, (k, j), -0.5 * cot)
        np.add.at(area, i, cross / 6)
    stiffness[np.diag_indices(count)] = -stiffness.sum(1)
    return stiffness, area


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (B, 3) of an outward-oriented surface."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    face_normal = np.cross(b - a, c - a)
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normal)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


@dataclass(frozen=True, eq=False)
class SurfaceShapeSpace:
    """Normal displacements of a reference surface in its smoothest Laplacian modes.

    Build with :meth:`from_volume_mesh`.  Fields: the harmonic ``extension``; ``faces``
    (F, 3) into the boundary order; ``reference_vertices`` and ``normals`` (B, 3) [m], [-];
    ``modes`` (B, K) [-]; ``frequencies`` (K,) Laplacian eigenvalues of the modes [1/m^2];
    ``length_scale`` [m] (the reference's RMS distance from its centroid).
    """

    extension: HarmonicExtension
    faces: np.ndarray
    reference_vertices: torch.Tensor
    normals: torch.Tensor
    modes: torch.Tensor
    frequencies: torch.Tensor
    length_scale: float

    @classmethod
    def from_volume_mesh(
        cls, nodes: np.ndarray, elements: np.ndarray, num_modes: int
    ) -> SurfaceShapeSpace:
        """Shape space of ``num_modes`` modes on a tetrahedral mesh (nodes (N, 3) [m])."""
        nodes, elements = np.asarray(nodes, dtype=np.float64), np.asarray(elements)
        if nodes.ndim != 2 or nodes.shape[1] != 3 or elements.ndim != 2 or elements.shape[1] != 4:
            raise ValueError("need a tetrahedral mesh: nodes (N, 3) [m] and elements (E, 4)")
        extension = HarmonicExtension.from_mesh(nodes, elements)
        vertices = nodes[extension.boundary]
        faces = boundary_faces(elements, extension.boundary, nodes)
        if not (isinstance(num_modes, int) and 1 <= num_modes <= len(vertices) - 4):
            raise ValueError(f"num_modes must be an integer in [1, {len(vertices) - 4}]")
        stiffness, area = cotangent_operator(vertices, faces)
        normals = vertex_normals(vertices, faces)
        modes, frequencies = _translation_free_modes(stiffness, area, normals, num_modes)
        centred = vertices - (area[:, None] * vertices).sum(0) / area.sum()
        scale = float(np.sqrt((area * (centred**2).sum(1)).sum() / area.sum()))
        return cls(
            extension,
            faces,
            torch.tensor(vertices),
            torch.tensor(normals),
            torch.tensor(modes),
            torch.tensor(frequencies),
            scale,
        )

    @property
    def num_modes(self) -> int:
        return int(self.modes.shape[1])

    def vertices(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Boundary vertices (B, 3) [m] of the shape with ``coefficients`` (K,) [-]."""
        c = torch.as_tensor(coefficients, dtype=DTYPE)
        if c.shape != (self.num_modes,):
            raise ValueError(f"coefficients must have shape ({self.num_modes},)")
        displacement = self.length_scale * (self.modes @ c)
        return self.reference_vertices + self.normals * displacement[:, None]

    def surface(self, coefficients: torch.Tensor) -> SurfaceMesh:
        """The shape as a ``SurfaceMesh`` [m] (for PLY output and distances)."""
        vertices = self.vertices(coefficients).detach().cpu().numpy()
        return SurfaceMesh(vertices, self.faces)

    def roughness(self, coefficients: torch.Tensor) -> torch.Tensor:
        """sum_k frequency_k length_scale^2 c_k^2 [-]: Dirichlet energy of the displacement."""
        c = torch.as_tensor(coefficients, dtype=DTYPE)
        return (self.frequencies * self.length_scale**2 * c**2).sum()


def _translation_free_modes(stiffness, area, normals, count):
    """(modes (B, K), frequencies (K,)): Rayleigh-Ritz of the Laplacian on the span of its
    K + 3 smoothest eigenvectors with the translation fields projected out (area inner
    product), modes normalised to unit area-weighted RMS."""
    mass = np.diag(area)
    _, vectors = scipy.linalg.eigh(stiffness, mass, subset_by_index=[0, count + 2])
    translations = normals  # (B, 3): n . e_k
    gram = translations.T @ (area[:, None] * translations)
    projection = vectors - translations @ np.linalg.solve(
        gram, translations.T @ (area[:, None] * vectors)
    )
    reduced_mass = projection.T @ (area[:, None] * projection)
    values, directions = np.linalg.eigh(reduced_mass)
    keep = directions[:, -count:] / np.sqrt(values[-count:])  # drop the 3 removed directions
    basis = projection @ keep
    frequencies, rotation = scipy.linalg.eigh(
        basis.T @ stiffness @ basis, basis.T @ (area[:, None] * basis)
    )
    modes = basis @ rotation
    rms = np.sqrt((area[:, None] * modes**2).sum(0) / area.sum())
    return modes / rms, np.clip(frequencies, 0.0, None)
