"""Labelled 2-D/3-D meshes and small references for the tests/test_permeable_* files."""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
from skfem import MeshTet

from mf_dmri.fem.bloch_torrey import BlochTorreyOperator


def grid_triangles(xs: np.ndarray, ys: np.ndarray, crossed: bool = False):
    """Structured triangulation of the grid xs x ys [m]: each cell split by its diagonal,
    or into 4 triangles around its centre if ``crossed`` (symmetric under the square's
    symmetries).  Returns nodes (N, 2), elements (E, 3), cell centres (E, 2)."""
    nx, ny = xs.size, ys.size
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    nodes = [np.stack([gx.ravel(), gy.ravel()], axis=1)]
    index = np.arange(nx * ny).reshape(nx, ny)
    a, b = index[:-1, :-1].ravel(), index[1:, :-1].ravel()
    c, d = index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    if crossed:
        centres = 0.25 * (nodes[0][a] + nodes[0][b] + nodes[0][c] + nodes[0][d])
        mid = nx * ny + np.arange(a.size)
        nodes.append(centres)
        elements = np.concatenate(
            [np.stack(t, axis=1) for t in ((a, b, mid), (b, c, mid), (c, d, mid), (d, a, mid))]
        )
    else:
        elements = np.concatenate([np.stack([a, b, c], axis=1), np.stack([a, c, d], axis=1)])
    points = np.concatenate(nodes)
    return points, elements, points[elements].mean(axis=1)


def split_rectangle(length: float, widths: tuple[float, float], nx: int, ny: tuple[int, int]):
    """[0, length] x [0, w1 + w2] split at y = w1 (interface parallel to x): labels 0 (below)
    and 1 (above).  Returns nodes, elements, labels."""
    ys = np.concatenate(
        [np.linspace(0, widths[0], ny[0] + 1), np.linspace(widths[0], sum(widths), ny[1] + 1)[1:]]
    )
    nodes, elements, centres = grid_triangles(np.linspace(0, length, nx + 1), ys)
    return nodes, elements, (centres[:, 1] > widths[0]).astype(np.int64)


def square_in_square(side: float, inner: float, cells: int, crossed: bool = True):
    """Square [-side/2, side/2]^2 with an inner square |x|, |y| < inner/2 (label 1) in an
    outer frame (label 0); ``cells`` per side, inner edges on grid lines."""
    xs = np.linspace(-side / 2, side / 2, cells + 1)
    nodes, elements, centres = grid_triangles(xs, xs, crossed=crossed)
    inside = (np.abs(centres) < inner / 2).all(axis=1)
    return nodes, elements, inside.astype(np.int64)


def ball(radius: float, refine: int):
    """Tetrahedral ball of ``radius`` [m] (scikit-fem's init_ball refined ``refine`` times),
    nodes of the boundary projected onto the sphere after each refinement."""
    mesh = MeshTet.init_ball()
    for _ in range(refine):
        mesh = mesh.refined()
        boundary = mesh.boundary_nodes()
        p = mesh.p.copy()
        p[:, boundary] /= np.linalg.norm(p[:, boundary], axis=0)
        mesh = MeshTet(p, mesh.t)
    return radius * mesh.p.T, mesh.t.T


def dense_signal(operator: BlochTorreyOperator, durations, gradients, gamma: float) -> complex:
    """r^T M m(TE) / r^T M m0 by dense expm of -tau M^-1 (A + i gamma g.J) per piece
    (independent of any eigen-decomposition)."""
    mass = operator.mass.toarray()
    decay = operator.decay.toarray()
    moments = [q.toarray() for q in operator.moments]
    state = operator.initial.astype(complex)
    for tau, g in zip(durations, gradients, strict=True):
        local = operator.axes @ np.asarray(g, dtype=float)
        generator = decay + 1j * gamma * sum(gk * q for gk, q in zip(local, moments, strict=True))
        state = la.expm(-tau * la.solve(mass, generator)) @ state
    return complex(operator.readout @ (mass @ state)) / operator.initial_signal()
