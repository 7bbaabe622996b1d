"""A neuron-like cell: a spherical soma with branching cylindrical neurites, built as the
boolean union (manifold3d, Apache-2.0) of a sphere and capsules with near-equilateral
triangles.  Deterministic for a given seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_dmri.geometry.generators import _capsule_between
from mf_dmri.geometry.surface import SurfaceMesh


@dataclass(frozen=True, eq=False)
class NeuronSkeleton:
    """Soma centre (3,) [m] and radius [m]; neurite segments as start (n, 3), end (n, 3)
    [m] and radius (n,) [m]."""

    soma_radius: float
    starts: np.ndarray
    ends: np.ndarray
    radii: np.ndarray

    def __post_init__(self) -> None:
        starts = np.array(self.starts, dtype=np.float64).reshape(-1, 3)
        ends = np.array(self.ends, dtype=np.float64).reshape(-1, 3)
        radii = np.array(self.radii, dtype=np.float64).reshape(-1)
        if not (len(starts) == len(ends) == len(radii)):
            raise ValueError("starts, ends (n, 3) [m] and radii (n,) [m] must match")
        if not self.soma_radius > 0 or not (radii > 0).all():
            raise ValueError("soma_radius and radii must be positive [m]")
        for name, value in (("starts", starts), ("ends", ends), ("radii", radii)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether points (P, 3) [m] lie in the union of soma and capsules (exact)."""
        inside = np.linalg.norm(points, axis=1) <= self.soma_radius
        for start, end, radius in zip(self.starts, self.ends, self.radii, strict=True):
            axis = end - start
            t = np.clip((points - start) @ axis / (axis @ axis), 0, 1)
            inside |= np.linalg.norm(points - start - t[:, None] * axis, axis=1) <= radius
        return inside


def neuron_skeleton(
    *,
    soma_radius: float = 5e-6,
    n_neurites: int = 4,
    branch_levels: int = 2,
    neurite_radius: float = 1e-6,
    segment_length: float = 15e-6,
    seed: int = 0,
) -> NeuronSkeleton:
    """Random branching skeleton.  soma_radius [m]; n_neurites primary neurites;
    branch_levels: binary branchings per neurite; neurite_radius: primary radius [m] (x0.75
    per level); segment_length [m]; seed: random seed."""
    rng = np.random.default_rng(seed)
    starts, ends, radii = [], [], []
    directions = rng.normal(size=(n_neurites, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    stack = [(0.8 * soma_radius * d, d, neurite_radius, 0) for d in directions]
    while stack:
        start, direction, radius, level = stack.pop()
        end = start + segment_length * (1 + 0.3 * rng.uniform(-1, 1)) * direction
        starts.append(start)
        ends.append(end)
        radii.append(radius)
        if level < branch_levels:
            normal = np.cross(direction, rng.normal(size=3))
            normal /= np.linalg.norm(normal)
            for sign in (-1, 1):
                child = np.cos(0.5) * direction + sign * np.sin(0.5) * normal
                stack.append((end, child / np.linalg.norm(child), 0.75 * radius, level + 1))
    return NeuronSkeleton(float(soma_radius), np.array(starts), np.array(ends), np.array(radii))


def neuron_surface(skeleton: NeuronSkeleton, *, segments: int = 10) -> SurfaceMesh:
    """Closed outward surface of the skeleton's union [m]; ``segments`` vertices around
    each neurite and three times as many around the soma."""
    import manifold3d

    unit = skeleton.soma_radius

    def solid(mesh: SurfaceMesh):
        return manifold3d.Manifold(
            manifold3d.Mesh(
                vert_properties=np.ascontiguousarray(mesh.vertices, dtype=np.float32),
                tri_verts=np.ascontiguousarray(mesh.faces, dtype=np.uint32),
            )
        )

    parts = [solid(_capsule_between(np.zeros(3), np.zeros(3), 1.0, 3 * segments))]
    for start, end, radius in zip(skeleton.starts, skeleton.ends, skeleton.radii, strict=True):
        parts.append(solid(_capsule_between(start / unit, end / unit, radius / unit, segments)))
    union = manifold3d.Manifold.batch_boolean(parts, manifold3d.OpType.Add)
    mesh = union.to_mesh64() if hasattr(union, "to_mesh64") else union.to_mesh()
    vertices = np.asarray(mesh.vert_properties, dtype=np.float64)[:, :3] * unit
    return SurfaceMesh(vertices, np.asarray(mesh.tri_verts, dtype=np.int64))
