"""Neuron-like cells.

* ``neuron_surface(neuron_skeleton(seed=...))``: a spherical soma with branching
  cylindrical neurites, built as the boolean union (manifold3d, Apache-2.0) of a sphere and
  capsules with near-equilateral triangles.  Deterministic for a given seed.  The union
  leaves sliver triangles where the parts meet.
* ``bipolar_neuron``: a soma with two tapered neurites as one smooth tube (C^1 junctions,
  no boolean union), so mesh generators make no slivers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_dmri.geometry.generators import _Y, _capsule_between, _tube
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


def bipolar_neuron(
    soma_radius: float,
    neurite_radius: float,
    tip_radius: float,
    length: float,
    *,
    bend_radius: float | None = None,
    soma_width: float | None = None,
    segments: int = 20,
) -> SurfaceMesh:
    """A bipolar cell as one smooth closed tube along a centreline of ``length`` [m] (a
    circular arc of radius ``bend_radius`` [m] in the x-z plane, straight along z if None),
    centred at the origin, with flat end caps.  Each neurite tapers linearly from
    ``neurite_radius`` [m] at the centre to ``tip_radius`` [m] at its end, n(s); the soma
    bulge reaches ``soma_radius`` [m]:

        r(s) = n(s) + (soma_radius - n(s)) cos^2(pi u / 2),  u = clip(s' / soma_width, -1, 1),

    with s' the arc length from the centre and ``soma_width`` [m] (default 4/3 soma_radius)
    the half-length of the bulge.  ``segments`` vertices around each ring.  Volume: the
    integral of pi r(s)^2 ds (tube formula, exact while the radius times the curvature
    stays below 1, which is checked).
    """
    values = (soma_radius, neurite_radius, tip_radius, length)
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError("soma_radius, neurite_radius, tip_radius and length must be positive [m]")
    if not soma_radius > neurite_radius >= tip_radius:
        raise ValueError("need soma_radius > neurite_radius >= tip_radius [m]")
    width = 4 / 3 * soma_radius if soma_width is None else float(soma_width)
    if not 0 < width <= length / 2:
        raise ValueError(f"soma_width must be in (0, length / 2] [m], got {width!r}")
    if bend_radius is not None and not soma_radius < bend_radius:
        raise ValueError("bend_radius must exceed soma_radius [m] (the tube would fold)")
    if segments < 6:
        raise ValueError(f"segments must be >= 6, got {segments}")
    edge = 2 * np.pi * neurite_radius / segments  # ring spacing along the centreline
    arc = np.linspace(-length / 2, length / 2, max(2, int(np.ceil(length / edge))) + 1)
    return _tube(*_centreline(arc, bend_radius), _radius(arc, values, width), _Y, segments)


def _centreline(arc: np.ndarray, bend_radius: float | None) -> tuple[np.ndarray, np.ndarray]:
    if bend_radius is None:
        return arc[:, None] * np.array([0.0, 0.0, 1.0]), np.tile([0.0, 0.0, 1.0], (len(arc), 1))
    angle = arc / bend_radius
    centres = np.stack([bend_radius * (1 - np.cos(angle)), 0 * arc, bend_radius * np.sin(angle)])
    return centres.T, np.stack([np.sin(angle), 0 * arc, np.cos(angle)]).T


def _radius(arc: np.ndarray, values: tuple, width: float) -> np.ndarray:
    soma, neurite, tip, length = values
    taper = neurite - (neurite - tip) * np.abs(arc) / (length / 2)
    bulge = np.cos(np.pi * np.clip(arc / width, -1, 1) / 2) ** 2
    return taper + (soma - taper) * bulge
