"""Closed, outward-wound surface meshes of standard shapes, in SI units.

The resolution argument is ``segments`` (vertices around the circumference of the main
radius; edges elsewhere have about the same length) or ``subdivisions`` (icosphere level).
Each shape's exact volume is known in closed form; the polygonal surfaces converge to it at
second order in the edge length.
"""

from __future__ import annotations

import numpy as np
import trimesh

from mf_dmri.geometry.rings import Ring, disk_rings, perpendicular_frame, rings_to_surface
from mf_dmri.geometry.surface import SurfaceMesh

_Z = np.array([0.0, 0.0, 1.0])
_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])


def _positive(value: float, name: str, unit: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number [{unit}], got {value!r}")
    return value


def _segments(segments: int, minimum: int = 6) -> int:
    if int(segments) != segments or segments < minimum:
        raise ValueError(f"segments must be an integer >= {minimum}, got {segments!r}")
    return int(segments)


def _tube(
    centres: np.ndarray,
    tangents: np.ndarray,
    radii: np.ndarray,
    reference: np.ndarray,
    segments: int,
) -> SurfaceMesh:
    """Closed tube with flat end caps perpendicular to the centreline (rings, poles)."""
    edge = 2 * np.pi * float(radii.max()) / segments
    frames = [perpendicular_frame(t, reference) for t in tangents]
    start = disk_rings(centres[0], float(radii[0]), frames[0], edge, outward_first=False)
    end = disk_rings(centres[-1], float(radii[-1]), frames[-1], edge, outward_first=True)
    body = [Ring(c, float(r), f) for c, r, f in zip(centres, radii, frames, strict=True)]
    rings = start + body + end
    counts = [1 if r.radius == 0 else None for r in rings]
    counts = [
        c
        if c
        else (
            segments
            if k >= len(start) and k < len(start) + len(body)
            else max(3, int(round(2 * np.pi * rings[k].radius / edge)))
        )
        for k, c in enumerate(counts)
    ]
    return rings_to_surface(rings, edge, counts)


#: Default resolution of the generators: vertices around a tube (surface edge 2 pi R / 80,
#: about R / 13) and the icosphere level (edge about R / 13 at level 4).  Chosen by
#: measurement (validation/fem_vs_analytic.md): with ``tetrahedralize`` defaults, P1 and a
#: cutoff length_scale = R / 2, the MF-FEM signal of the closed cylinder (gradient
#: perpendicular and oblique) and of the sphere is within 1.6e-3 of the analytic MF for
#: b <= 10,000 s/mm^2 (the target is 2e-3); 32 segments / level 3 gave 9e-3 / 6e-3.
DEFAULT_SEGMENTS = 80
DEFAULT_SUBDIVISIONS = 4


def cylinder(radius: float, length: float, *, segments: int = DEFAULT_SEGMENTS) -> SurfaceMesh:
    """Capped circular cylinder along z, centred at the origin.

    radius: cylinder radius [m].  length: length along z [m].  segments: vertices around.
    Volume pi radius^2 length (approached at second order in 1/segments).
    """
    radius, length = _positive(radius, "radius", "m"), _positive(length, "length", "m")
    segments = _segments(segments)
    edge = 2 * np.pi * radius / segments
    n_axial = max(1, int(np.ceil(length / edge)))
    z = np.linspace(-length / 2, length / 2, n_axial + 1)
    centres = z[:, None] * _Z
    return _tube(centres, np.tile(_Z, (len(z), 1)), np.full(len(z), radius), _X, segments)


def sphere(radius: float, *, subdivisions: int = DEFAULT_SUBDIVISIONS) -> SurfaceMesh:
    """Icosphere centred at the origin.  radius [m]; subdivisions: icosphere level."""
    radius = _positive(radius, "radius", "m")
    mesh = trimesh.creation.icosphere(subdivisions=int(subdivisions), radius=1.0)
    return SurfaceMesh(np.asarray(mesh.vertices) * radius, np.asarray(mesh.faces))


def ellipsoid(
    semi_axes: tuple[float, float, float], *, subdivisions: int = DEFAULT_SUBDIVISIONS
) -> SurfaceMesh:
    """Axis-aligned ellipsoid centred at the origin (a scaled icosphere).

    semi_axes: (a, b, c) semi-axis lengths along x, y, z [m].  Volume 4/3 pi a b c.
    """
    axes = np.array([_positive(a, "semi_axes", "m") for a in semi_axes])
    if axes.shape != (3,):
        raise ValueError("semi_axes must be three lengths (a, b, c) [m]")
    mesh = trimesh.creation.icosphere(subdivisions=int(subdivisions), radius=1.0)
    return SurfaceMesh(np.asarray(mesh.vertices) * axes, np.asarray(mesh.faces))


def capsule(radius: float, length: float, *, segments: int = DEFAULT_SEGMENTS) -> SurfaceMesh:
    """Cylinder with hemispherical caps along z, centred at the origin.

    radius [m]; length: length of the cylindrical part [m] (total length + 2 radius).
    Volume pi r^2 length + 4/3 pi r^3.
    """
    radius = _positive(radius, "radius", "m")
    length = float(length)
    if not np.isfinite(length) or length < 0:
        raise ValueError(f"length must be >= 0 [m], got {length!r}")
    segments = _segments(segments)
    return _capsule_between(
        np.array([0, 0, -length / 2]), np.array([0, 0, length / 2]), radius, segments
    )


def _capsule_between(
    start: np.ndarray, end: np.ndarray, radius: float, segments: int
) -> SurfaceMesh:
    """Capsule around the segment start-end [m] (a sphere when they coincide)."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    direction = axis / length if length > 0 else _Z
    reference = _X if abs(direction[0]) < 0.9 else _Y
    frame = perpendicular_frame(direction, reference)
    edge = 2 * np.pi * radius / segments
    n_polar = max(2, int(np.ceil(np.pi * radius / 2 / edge)))
    theta = np.linspace(0, np.pi / 2, n_polar + 1)
    rings = [Ring(start - radius * np.cos(t) * direction, radius * np.sin(t), frame) for t in theta]
    n_axial = int(np.ceil(length / edge))
    rings += [Ring(start + s * axis, radius, frame) for s in np.linspace(0, 1, n_axial + 1)[1:]]
    rings += [
        Ring(end + radius * np.sin(t) * direction, radius * np.cos(t), frame) for t in theta[1:]
    ]
    rings = [Ring(r.centre, 0.0 if r.radius < 1e-12 * radius else r.radius, r.frame) for r in rings]
    return rings_to_surface(rings, edge)


def torus(
    major_radius: float, minor_radius: float, *, segments: int = DEFAULT_SEGMENTS
) -> SurfaceMesh:
    """Torus around the z axis.  major_radius: centre-line radius [m]; minor_radius: tube
    radius [m] (< major_radius); segments: vertices around the tube.  Volume 2 pi^2 R r^2."""
    major = _positive(major_radius, "major_radius", "m")
    minor = _positive(minor_radius, "minor_radius", "m")
    if minor >= major:
        raise ValueError(
            "minor_radius must be smaller than major_radius (else the torus self-intersects)"
        )
    segments = _segments(segments)
    major_sections = max(segments, int(round(segments * major / minor)))
    # built at unit minor radius: trimesh merges vertices with an absolute tolerance
    mesh = trimesh.creation.torus(
        major / minor, 1.0, major_sections=major_sections, minor_sections=segments
    )
    return SurfaceMesh(np.asarray(mesh.vertices) * minor, np.asarray(mesh.faces))


def beaded_axon(
    radius: float,
    length: float,
    bead_amplitude: float,
    bead_wavelength: float,
    *,
    segments: int = DEFAULT_SEGMENTS,
) -> SurfaceMesh:
    """Axon along z whose radius is modulated: r(z) = radius (1 + bead_amplitude
    sin(2 pi z / bead_wavelength)), z in [0, length], with flat end caps.

    radius: mean radius [m]; length [m]; bead_amplitude: relative modulation in [0, 1)
    [dimensionless]; bead_wavelength: bead period along the axis [m].
    Volume pi radius^2 length (1 + amplitude^2 / 2) when length is a whole number of periods.
    """
    radius, length = _positive(radius, "radius", "m"), _positive(length, "length", "m")
    wavelength = _positive(bead_wavelength, "bead_wavelength", "m")
    if not 0 <= bead_amplitude < 1:
        raise ValueError(f"bead_amplitude must be in [0, 1) [1], got {bead_amplitude!r}")
    segments = _segments(segments)
    edge = 2 * np.pi * radius * (1 - bead_amplitude) / segments
    z = np.linspace(0, length, max(2, int(np.ceil(length / edge))) + 1)
    radii = radius * (1 + bead_amplitude * np.sin(2 * np.pi * z / wavelength))
    return _tube(z[:, None] * _Z, np.tile(_Z, (len(z), 1)), radii, _X, segments)


def undulating_axon(
    radius: float,
    length: float,
    undulation_amplitude: float,
    undulation_wavelength: float,
    *,
    segments: int = DEFAULT_SEGMENTS,
) -> SurfaceMesh:
    """Constant-radius axon around the sinusoidal centreline x = amplitude sin(2 pi z /
    wavelength), y = 0, z in [0, length]; flat end caps perpendicular to the centreline.

    radius [m]; length: extent along z [m]; undulation_amplitude [m]; undulation_wavelength
    [m].  Volume pi radius^2 times the centreline arc length (the tube formula), valid
    because radius times the maximum curvature must stay below 1 (checked).
    """
    radius, length = _positive(radius, "radius", "m"), _positive(length, "length", "m")
    amplitude = float(undulation_amplitude)
    wavelength = _positive(undulation_wavelength, "undulation_wavelength", "m")
    wavenumber = 2 * np.pi / wavelength
    if radius * abs(amplitude) * wavenumber**2 >= 1:
        raise ValueError(
            "the tube would fold onto itself: radius x max curvature = "
            f"{radius * abs(amplitude) * wavenumber**2:.3g} >= 1; reduce the amplitude or the "
            "radius, or lengthen the wavelength"
        )
    segments = _segments(segments)
    edge = 2 * np.pi * radius / segments
    arc_max = length * np.sqrt(1 + (amplitude * wavenumber) ** 2)
    z = np.linspace(0, length, max(2, int(np.ceil(arc_max / edge))) + 1)
    centres = np.stack([amplitude * np.sin(wavenumber * z), 0 * z, z], axis=1)
    tangents = np.stack([amplitude * wavenumber * np.cos(wavenumber * z), 0 * z, 1 + 0 * z], 1)
    return _tube(centres, tangents, np.full(len(z), radius), _Y, segments)


def box(size: tuple[float, float, float], *, edge_length: float | None = None) -> SurfaceMesh:
    """Axis-aligned box with its minimum corner at the origin, faces split into a grid of
    right triangles of side about ``edge_length`` [m] (default: a tenth of the smallest side).

    size: (Lx, Ly, Lz) side lengths [m].
    """
    sides = np.array([_positive(s, "size", "m") for s in size])
    if sides.shape != (3,):
        raise ValueError("size must be three side lengths (Lx, Ly, Lz) [m]")
    edge = sides.min() / 10 if edge_length is None else _positive(edge_length, "edge_length", "m")
    counts = np.maximum(1, np.ceil(sides / edge).astype(int))
    vertices, faces = _grid_box(sides, counts)
    return SurfaceMesh(vertices, faces)


def _grid_box(sides: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Box surface from six structured grids, merged along shared edges."""
    pieces, faces, offset = [], [], 0
    for axis in range(3):
        u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
        u = np.linspace(0, sides[u_axis], counts[u_axis] + 1)
        v = np.linspace(0, sides[v_axis], counts[v_axis] + 1)
        uu, vv = np.meshgrid(u, v, indexing="ij")
        nu, nv = uu.shape
        index = np.arange(nu * nv).reshape(nu, nv)
        quads = np.stack([index[:-1, :-1], index[1:, :-1], index[1:, 1:], index[:-1, 1:]], -1)
        quads = quads.reshape(-1, 4)
        tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
        for side in (0.0, sides[axis]):
            points = np.zeros((nu * nv, 3))
            points[:, axis] = side
            points[:, u_axis], points[:, v_axis] = uu.ravel(), vv.ravel()
            local = tris if side > 0 else tris[:, ::-1]
            pieces.append(points)
            faces.append(local + offset)
            offset += len(points)
    vertices = np.concatenate(pieces)
    faces = np.concatenate(faces)
    key = np.round(vertices / sides.max() * 1e9).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return vertices[first], inverse.reshape(-1)[faces]
