"""Explicit, reported simplification of a :class:`Morphology` before meshing.

Reconstructed skeletons have thousands of nodes a few hundred nanometres apart and radii
down to the tracing resolution; a surface resolving all of them has ~1e6 triangles.
Nothing here happens unless asked, and every change is counted in the
:class:`SimplificationReport`:

1. ``keep_largest_tree``: of a forest, keep the tree with the largest frustum volume.
2. ``min_twig_length`` [m]: drop terminal branches (from a tip up to, not including, the
   nearest branch point) whose path length is below it; one pass, so a branch point that
   loses a twig becomes an ordinary node.  Unbranched trees and soma nodes are kept.
3. ``merge_tolerance`` [m]: remove a node with one parent and one child (same structure
   type) while every removed node lies within the tolerance of the straight segment that
   replaces it, both in position and in radius (linear along that segment) -- a greedy
   walk along each unbranched chain.
4. ``min_radius`` [m]: raise radii below it to it (a floor); the nodes and segments
   affected are counted.  Without a floor, radii are kept as read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mf_dmri.geometry.morphology import SOMA, Morphology, frustum_volume


@dataclass(frozen=True)
class SimplificationReport:
    """Counts of every change; lengths [m], volumes [m^3] (frustum sums of the segments,
    before and after)."""

    n_nodes_before: int
    n_nodes_after: int
    n_trees_dropped: int
    n_twigs_dropped: int
    twig_length_dropped: float
    n_merged_nodes: int
    min_radius: float | None
    n_floored_nodes: int
    n_floored_segments: int
    volume_before: float
    volume_after: float

    @property
    def volume_change(self) -> float:
        """Relative change of the frustum sum [1]."""
        return (self.volume_after - self.volume_before) / self.volume_before

    def summary(self) -> str:
        um = 1e-6
        floor = (
            "no radius floor"
            if self.min_radius is None
            else (
                f"radius floor {self.min_radius / um:g} um raised {self.n_floored_nodes} "
                f"node(s) ({self.n_floored_segments} segment(s))"
            )
        )
        return (
            f"nodes {self.n_nodes_before} -> {self.n_nodes_after}; "
            f"trees dropped {self.n_trees_dropped}; twigs dropped {self.n_twigs_dropped} "
            f"({self.twig_length_dropped / um:.1f} um of cable); collinear nodes merged "
            f"{self.n_merged_nodes}; {floor}; volume of the segment frusta (soma segments "
            "as frusta, not as the soma sphere of the surface) "
            f"{self.volume_before / um**3:.1f} -> {self.volume_after / um**3:.1f} um^3 "
            f"({100 * self.volume_change:+.2f} %)"
        )


def segment_volume(morphology: Morphology) -> float:
    """Sum of the frustum volumes of all segments [m^3] (soma segments included)."""
    parent, child = morphology.segment_nodes()
    height = np.linalg.norm(morphology.positions[child] - morphology.positions[parent], axis=1)
    return float(frustum_volume(height, morphology.radii[parent], morphology.radii[child]).sum())


def simplify_morphology(
    morphology: Morphology,
    *,
    min_radius: float | None = None,
    merge_tolerance: float | None = None,
    min_twig_length: float | None = None,
    keep_largest_tree: bool = False,
) -> tuple[Morphology, SimplificationReport]:
    """Simplified copy of ``morphology`` and the report of every change.

    min_radius: radius floor [m] (None: none).  merge_tolerance: largest deviation [m] in
    position and radius of a merged node (None: no merging).  min_twig_length: shortest
    terminal branch kept [m] (None: all kept).  keep_largest_tree: drop all trees but the
    one of largest frustum volume.  See the module docstring for the order.
    """
    for name, value in (
        ("min_radius", min_radius),
        ("merge_tolerance", merge_tolerance),
        ("min_twig_length", min_twig_length),
    ):
        if value is not None and not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive length [m] or None, got {value!r}")
    before, current = segment_volume(morphology), morphology
    trees = 0
    if keep_largest_tree and morphology.n_roots > 1:
        current, trees = _largest_tree(current)
    twigs, twig_length = 0, 0.0
    if min_twig_length is not None:
        current, twigs, twig_length = _drop_twigs(current, min_twig_length)
    merged = 0
    if merge_tolerance is not None:
        current, merged = _merge_collinear(current, merge_tolerance)
    floored_nodes = floored_segments = 0
    if min_radius is not None:
        current, floored_nodes, floored_segments = _floor(current, min_radius)
    report = SimplificationReport(
        morphology.n_nodes, current.n_nodes, trees, twigs, twig_length, merged,
        min_radius, floored_nodes, floored_segments, before, segment_volume(current),
    )  # fmt: skip
    return current, report


def _subset(morphology: Morphology, keep: np.ndarray) -> Morphology:
    """Keep the nodes where ``keep``; each kept node hangs from its nearest kept ancestor."""
    parents = morphology.parents
    new_parent = parents.copy()
    for node in np.flatnonzero(keep):
        ancestor = parents[node]
        while ancestor >= 0 and not keep[ancestor]:
            ancestor = parents[ancestor]
        new_parent[node] = ancestor
    index = np.cumsum(keep) - 1
    mapped = np.where(new_parent >= 0, index[np.maximum(new_parent, 0)], -1)[keep]
    return Morphology(
        morphology.positions[keep], morphology.radii[keep], mapped, morphology.kinds[keep]
    )


def _roots(parents: np.ndarray) -> np.ndarray:
    root = np.arange(len(parents))
    for _ in range(len(parents)):
        up = parents[root]
        if (up < 0).all():
            break
        root = np.where(up >= 0, up, root)
    return root


def _largest_tree(morphology: Morphology) -> tuple[Morphology, int]:
    root = _roots(morphology.parents)
    parent, child = morphology.segment_nodes()
    height = np.linalg.norm(morphology.positions[child] - morphology.positions[parent], axis=1)
    volume = frustum_volume(height, morphology.radii[parent], morphology.radii[child])
    per_root = np.bincount(root[child], weights=volume, minlength=morphology.n_nodes)
    keep = root == int(np.argmax(per_root))
    return _subset(morphology, keep), int(morphology.n_roots - 1)


def _drop_twigs(morphology: Morphology, min_length: float):
    parents, positions = morphology.parents, morphology.positions
    children = morphology.children_count()
    keep = np.ones(morphology.n_nodes, dtype=bool)
    count, dropped = 0, 0.0
    for tip in np.flatnonzero(children == 0):
        path, length, node = [tip], 0.0, tip
        while parents[node] >= 0 and children[parents[node]] == 1:
            length += float(np.linalg.norm(positions[node] - positions[parents[node]]))
            node = parents[node]
            path.append(node)
        base = parents[node]
        if base < 0:  # the whole tree is one unbranched path
            continue
        length += float(np.linalg.norm(positions[node] - positions[base]))
        if length < min_length and not (morphology.kinds[path] == SOMA).any():
            keep[path] = False
            count, dropped = count + 1, dropped + length
    return _subset(morphology, keep), count, dropped


def _merge_collinear(morphology: Morphology, tolerance: float):
    parents, kinds = morphology.parents, morphology.kinds
    children = morphology.children_count()
    only_child = np.full(morphology.n_nodes, -1)
    single = np.flatnonzero((parents >= 0) & (children[np.maximum(parents, 0)] == 1))
    only_child[parents[single]] = single
    keep = np.ones(morphology.n_nodes, dtype=bool)
    anchor = np.array([_is_anchor(n, parents, children, kinds) for n in range(len(parents))])
    for first in np.flatnonzero((parents >= 0) & anchor[np.maximum(parents, 0)]):
        chain, node = [parents[first], first], first
        while not anchor[node]:
            node = only_child[node]
            chain.append(node)
        _merge_chain(morphology, np.array(chain), tolerance, keep)
    return _subset(morphology, keep), int((~keep).sum())


def _is_anchor(node: int, parents, children, kinds) -> bool:
    """Nodes that are never merged away: roots, tips, branch points, soma nodes and
    nodes whose structure type differs from their parent's."""
    parent = parents[node]
    return bool(
        parent < 0 or children[node] != 1 or kinds[node] == SOMA or kinds[node] != kinds[parent]
    )


def _merge_chain(morphology: Morphology, chain: np.ndarray, tolerance: float, keep) -> None:
    """Greedy: from each kept node, reach as far down the chain as the tolerance allows."""
    start = 0
    while start < len(chain) - 1:
        end = start + 1
        while end + 1 < len(chain) and _within(morphology, chain[start : end + 2], tolerance):
            end += 1
        keep[chain[start + 1 : end]] = False
        start = end


def _within(morphology: Morphology, nodes: np.ndarray, tolerance: float) -> bool:
    p, r = morphology.positions[nodes], morphology.radii[nodes]
    axis = p[-1] - p[0]
    length2 = float(axis @ axis)
    inner = p[1:-1] - p[0]
    t = np.clip(inner @ axis / length2, 0.0, 1.0) if length2 > 0 else np.zeros(len(inner))
    distance = np.linalg.norm(inner - t[:, None] * axis, axis=1)
    radius = r[0] + t * (r[-1] - r[0])
    return bool((distance <= tolerance).all() and (np.abs(r[1:-1] - radius) <= tolerance).all())


def _floor(morphology: Morphology, min_radius: float):
    low = morphology.radii < min_radius
    parent, child = morphology.segment_nodes()
    segments = int((low[parent] | low[child]).sum())
    radii = np.maximum(morphology.radii, min_radius)
    floored = Morphology(morphology.positions, radii, morphology.parents, morphology.kinds)
    return floored, int(low.sum()), segments
