"""Neuron morphologies as trees of nodes (SWC, NeuroMorpho style), in SI metres.

A :class:`Morphology` holds nodes with a position [m], a radius [m], a parent (index of
the parent node, -1 for a root) and an SWC structure type (1 soma, 2 axon, 3 basal
dendrite, 4 apical dendrite, others kept as read).  Each non-root node and its parent
bound one segment: a frustum of height h and end radii r1, r2 whose volume is

    V = pi h (r1^2 + r1 r2 + r2^2) / 3.

The soma (type-1 nodes) is read by one of the conventions of NeuroMorpho.Org
(Ascoli et al. 2007; "SWC specification" and "three-point soma" pages):

* one soma node: a sphere of the node's radius;
* three soma nodes, the second and third children of the first, at +-r from it with the
  first's radius r (the three-point convention): a sphere of radius r;
* any other number (a stack of cylinders along a soma axis): frusta like the neurites;
  with ``soma="sphere"`` (e.g. for a soma contour) one sphere at the centroid of the soma
  nodes, of radius the larger of their largest radius and their mean distance from the
  centroid.

Neurite segments whose parent is a soma node represented by a sphere start at the soma
centre with the child's radius (a cylinder inside the soma, as NEURON's import does): the
soma radius is not tapered down along the first segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOMA = 1
SOMA_CONVENTIONS = ("auto", "sphere", "frusta")


def frustum_volume(height: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Volume [m^3] of frusta of height [m] and end radii r1, r2 [m]."""
    return np.pi * height * (r1 * r1 + r1 * r2 + r2 * r2) / 3.0


def _readonly(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class Morphology:
    """A tree (or forest) of nodes.

    positions: (n, 3) [m]; radii: (n,) [m], >= 0 as read (zero radii are refused when
    meshing: set a floor with ``simplify_morphology(min_radius=...)``); parents: (n,) int,
    index of the parent node or -1 for a root; kinds: (n,) int, SWC structure type.
    """

    positions: np.ndarray
    radii: np.ndarray
    parents: np.ndarray
    kinds: np.ndarray

    def __post_init__(self) -> None:
        positions = np.array(self.positions, dtype=np.float64).reshape(-1, 3)
        radii = np.array(self.radii, dtype=np.float64).reshape(-1)
        parents = np.array(self.parents, dtype=np.int64).reshape(-1)
        kinds = np.array(self.kinds, dtype=np.int64).reshape(-1)
        n = len(positions)
        if not (len(radii) == len(parents) == len(kinds) == n) or n == 0:
            raise ValueError(
                "positions (n, 3) [m], radii (n,) [m], parents (n,) and kinds (n,) must "
                f"have the same n >= 1; got {n}, {len(radii)}, {len(parents)}, {len(kinds)}"
            )
        if not (np.isfinite(positions).all() and np.isfinite(radii).all()):
            raise ValueError("positions [m] and radii [m] must be finite")
        if (radii < 0).any():
            raise ValueError("radii must be >= 0 [m]")
        if ((parents < -1) | (parents >= n) | (parents == np.arange(n))).any():
            raise ValueError("parents must be -1 (root) or the index of another node")
        _check_acyclic(parents)
        for name, value in (
            ("positions", positions),
            ("radii", radii),
            ("parents", parents),
            ("kinds", kinds),
        ):
            object.__setattr__(self, name, _readonly(value))

    @property
    def n_nodes(self) -> int:
        return int(len(self.radii))

    @property
    def n_roots(self) -> int:
        return int((self.parents < 0).sum())

    def segment_nodes(self) -> tuple[np.ndarray, np.ndarray]:
        """(parent, child) node indices of every segment."""
        child = np.flatnonzero(self.parents >= 0)
        return self.parents[child], child

    def children_count(self) -> np.ndarray:
        """Number of children of each node."""
        return np.bincount(self.parents[self.parents >= 0], minlength=self.n_nodes)

    def cable_length(self) -> float:
        """Total length of all segments [m]."""
        parent, child = self.segment_nodes()
        return float(np.linalg.norm(self.positions[child] - self.positions[parent], axis=1).sum())


def _check_acyclic(parents: np.ndarray) -> None:
    depth = np.zeros(len(parents), dtype=np.int64)
    current = parents.copy()
    for _ in range(len(parents) + 1):
        alive = current >= 0
        if not alive.any():
            return
        depth[alive] += 1
        current[alive] = parents[current[alive]]
    raise ValueError("the parents form a cycle; a morphology must be a tree (or forest)")


@dataclass(frozen=True, eq=False)
class CellParts:
    """The solid pieces of a morphology: frusta from ``starts`` (m, 3) [m] with radius
    ``start_radii`` (m,) [m] to ``ends`` (m, 3) [m] with ``end_radii`` (m,) [m], and
    spheres (soma) at ``sphere_centres`` (k, 3) [m] of ``sphere_radii`` (k,) [m];
    ``soma_convention`` says how the soma was read."""

    starts: np.ndarray
    ends: np.ndarray
    start_radii: np.ndarray
    end_radii: np.ndarray
    sphere_centres: np.ndarray
    sphere_radii: np.ndarray
    soma_convention: str

    def frustum_volumes(self) -> np.ndarray:
        """Volume of each frustum [m^3] (closed form)."""
        height = np.linalg.norm(self.ends - self.starts, axis=1)
        return frustum_volume(height, self.start_radii, self.end_radii)

    def volume_sum(self) -> float:
        """Frusta plus soma spheres, each counted whole [m^3]: overlaps at joints and
        inside the soma are counted twice, the rounded joints of a smooth surface are not."""
        spheres = 4.0 / 3.0 * np.pi * self.sphere_radii**3
        return float(self.frustum_volumes().sum() + spheres.sum())


def cell_parts(morphology: Morphology, *, soma: str = "auto") -> CellParts:
    """Frusta and soma spheres of ``morphology`` under the soma convention ``soma``
    ("auto", "sphere" or "frusta"; see the module docstring)."""
    if soma not in SOMA_CONVENTIONS:
        raise ValueError(f"soma must be one of {SOMA_CONVENTIONS}, got {soma!r}")
    soma_nodes = np.flatnonzero(morphology.kinds == SOMA)
    convention, centres, radii = _soma(morphology, soma_nodes, soma)
    parent, child = morphology.segment_nodes()
    r_parent = morphology.radii[parent].copy()
    start = morphology.positions[parent].copy()
    if convention != "frusta" and len(soma_nodes):
        in_soma = np.isin(child, soma_nodes)
        parent, child = parent[~in_soma], child[~in_soma]
        start, r_parent = start[~in_soma], r_parent[~in_soma]
        from_soma = np.isin(parent, soma_nodes)
        r_parent[from_soma] = morphology.radii[child[from_soma]]
        if convention == "sphere":
            start[from_soma] = centres[0]
    return CellParts(
        _readonly(start),
        _readonly(morphology.positions[child]),
        _readonly(r_parent),
        _readonly(morphology.radii[child]),
        _readonly(centres),
        _readonly(radii),
        convention,
    )


def _soma(morphology: Morphology, nodes: np.ndarray, soma: str):
    none = (np.zeros((0, 3)), np.zeros(0))
    if len(nodes) == 0:
        return "none", *none
    positions, radii = morphology.positions[nodes], morphology.radii[nodes]
    if soma == "frusta":
        return "frusta", *none
    if len(nodes) == 1:
        return "one-point", positions, radii
    if soma == "auto":
        if _three_point(morphology, nodes):
            return "three-point", positions[:1], radii[:1]
        return "frusta", *none
    centre = positions.mean(axis=0)
    spread = float(np.linalg.norm(positions - centre, axis=1).mean())
    return "sphere", centre[None, :], np.array([max(spread, float(radii.max()))])


def _three_point(morphology: Morphology, nodes: np.ndarray) -> bool:
    """NeuroMorpho's three-point soma: nodes 2 and 3 are children of node 1, at distance
    r (its radius) on opposite sides, with the same radius (1e-3 relative tolerance)."""
    if len(nodes) != 3:
        return False
    first, second, third = nodes
    parents = morphology.parents
    if not (parents[second] == first and parents[third] == first):
        return False
    r = morphology.radii[first]
    p = morphology.positions
    offsets = (p[second] - p[first], p[third] - p[first])
    close = all(abs(np.linalg.norm(o) - r) <= 1e-3 * r for o in offsets)
    opposite = np.linalg.norm(offsets[0] + offsets[1]) <= 1e-3 * r
    return bool(close and opposite)
