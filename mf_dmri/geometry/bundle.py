"""A bundle of parallel, non-overlapping cylinders (axons) in a box, with gamma-distributed
radii, packed by random sequential addition up to a target intracellular volume fraction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_dmri.geometry.generators import box, cylinder
from mf_dmri.geometry.surface import SurfaceMesh


@dataclass(frozen=True, eq=False)
class CylinderBundle:
    """Axons along z inside the box [0, Lx] x [0, Ly] x [0, Lz].

    centres: (n, 2) axon centres in the xy-plane [m]; radii: (n,) [m]; box_size: (3,) [m];
    axon_length: length of every axon [m] (Lz minus a gap at each end);
    volume_fraction: exact cylinder volume / box volume [1] (the achieved fraction).
    """

    centres: np.ndarray
    radii: np.ndarray
    box_size: np.ndarray
    axon_length: float
    volume_fraction: float

    def __post_init__(self) -> None:
        centres = np.array(self.centres, dtype=np.float64).reshape(-1, 2)
        radii = np.array(self.radii, dtype=np.float64).reshape(-1)
        box_size = np.array(self.box_size, dtype=np.float64)
        if len(centres) != len(radii) or box_size.shape != (3,):
            raise ValueError("centres (n, 2) [m], radii (n,) [m] and box_size (3,) [m] needed")
        if not (radii > 0).all() or not (box_size > 0).all() or not self.axon_length > 0:
            raise ValueError("radii, box_size and axon_length must be positive [m]")
        for name, value in (("centres", centres), ("radii", radii), ("box_size", box_size)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    def surfaces(self, *, segments: int = 16) -> tuple[SurfaceMesh, ...]:
        """The box surface followed by one capped cylinder surface per axon [m]."""
        lz = float(self.box_size[2])
        edge = 2 * np.pi * float(self.radii.min()) / segments
        axons = tuple(
            cylinder(float(r), self.axon_length, segments=segments).translated([c[0], c[1], lz / 2])
            for c, r in zip(self.centres, self.radii, strict=True)
        )
        return (
            box(tuple(self.box_size), edge_length=max(edge, float(self.box_size.min()) / 8)),
            *axons,
        )

    def mesh_volume_fraction(self, *, segments: int = 16) -> float:
        """Volume fraction of the polygonal axon surfaces [1]."""
        surfaces = self.surfaces(segments=segments)
        return sum(s.signed_volume() for s in surfaces[1:]) / float(np.prod(self.box_size))


def cylinder_bundle(
    target_fraction: float,
    mean_radius: float,
    radius_shape: float,
    box_size: tuple[float, float, float],
    *,
    seed: int,
    gap: float | None = None,
    max_attempts: int = 20000,
) -> CylinderBundle:
    """Pack cylinders with Gamma(radius_shape, mean_radius / radius_shape) radii.

    target_fraction: intracellular volume fraction to reach [1].  mean_radius [m].
    radius_shape: gamma shape parameter k [1] (larger: narrower spread).  box_size: (Lx, Ly,
    Lz) [m].  seed: random seed.  gap: smallest distance between axons and from axons to
    the box walls and lids [m] (default mean_radius / 10).  max_attempts: random positions
    tried in all.  Raises ValueError when the fraction cannot be reached (random sequential
    addition jams near 0.5-0.6 area fraction); the achieved fraction is in the result.
    """
    sides = np.asarray(box_size, dtype=np.float64)
    if sides.shape != (3,) or not (sides > 0).all():
        raise ValueError(f"box_size must be three positive lengths [m], got {box_size!r}")
    if not 0 < target_fraction < 1:
        raise ValueError(f"target_fraction must be in (0, 1) [1], got {target_fraction!r}")
    if not mean_radius > 0 or not radius_shape > 0:
        raise ValueError("mean_radius [m] and radius_shape [1] must be positive")
    gap = mean_radius / 10 if gap is None else float(gap)
    axon_length = sides[2] - 2 * gap
    area_target = target_fraction * sides[2] / axon_length * sides[0] * sides[1]
    rng = np.random.default_rng(seed)
    centres: list[np.ndarray] = []
    radii: list[float] = []
    area, attempts = 0.0, 0
    while area < area_target and attempts < max_attempts:
        pool = _draw_radii(rng, area_target - area, mean_radius, radius_shape)
        for radius in pool:  # largest first packs denser
            margin = radius + gap
            if 2 * margin >= min(sides[0], sides[1]):
                continue
            for _ in range(100):
                attempts += 1
                point = rng.uniform([margin, margin], [sides[0] - margin, sides[1] - margin])
                if not centres or np.all(
                    np.linalg.norm(np.array(centres) - point, axis=1)
                    >= np.array(radii) + radius + gap
                ):
                    centres.append(point)
                    radii.append(float(radius))
                    area += np.pi * radius**2
                    break
            if area >= area_target or attempts >= max_attempts:
                break
    fraction = area * axon_length / float(np.prod(sides))
    if area < area_target:
        raise ValueError(
            f"reached volume fraction {fraction:.3f} < target {target_fraction:.3f} after "
            f"{attempts} attempts; random packing jams: lower target_fraction, the gap, or "
            "the radius spread"
        )
    return CylinderBundle(
        np.array(centres), np.array(radii), sides, float(axon_length), float(fraction)
    )


def _draw_radii(
    rng: np.random.Generator, area: float, mean_radius: float, shape: float
) -> np.ndarray:
    """Gamma radii whose disks cover at least ``area`` [m^2], largest first."""
    radii: list[float] = []
    while np.pi * np.sum(np.square(radii)) < area:
        radii.append(float(rng.gamma(shape, mean_radius / shape)))
    return np.sort(radii)[::-1]
