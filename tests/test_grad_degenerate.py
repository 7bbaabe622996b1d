"""Gradients at EXACTLY degenerate spectra (symmetric meshes whose eigenvalue pairs agree
to machine precision) are finite and match central finite differences.

The finite differences perturb the mesh, which splits each degenerate pair; losses that
are invariant under rotations inside every cluster stay smooth, so their derivative
exists.  A matrix-formalism signal is such a loss only if it sees the reduced stiffness
``diag(lambda) + coupling`` (DifferentiableEigendata.reduced_stiffness): the last test
shows that with ``diag(lambda)`` alone its derivative misses the within-cluster term
(docs/eigen_derivatives.md, "Why the coupling output").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grad_helpers import (
    cluster_moment_loss,
    cluster_weights,
    directional_derivatives,
    eigendata,
    fd_directions,
    mf_signal,
    relative_error,
    symmetric_cube,
    symmetric_disk,
)

CASES = {
    # mesh, kept modes (a cluster boundary with a clear gap), gradient direction
    "disk": (symmetric_disk, 14, (np.sqrt(0.5), np.sqrt(0.5))),
    "cube": (symmetric_cube, 7, (0.6, 0.8, 0.0)),
}


def _exact_pairs(data) -> int:
    """Number of adjacent eigenvalue pairs equal to 1e-13 relative."""
    lam = data.eigenbasis.eigenvalues.detach().numpy()
    return int((np.diff(lam) < 1e-13 * lam[-1]).sum())


def _ellipse_at_45_degrees(nodes: torch.Tensor) -> torch.Tensor:
    """Displacement (y, x, 0): stretches along (1, 1) and squeezes along (1, -1)."""
    v = torch.zeros_like(nodes)
    v[:, 0], v[:, 1] = nodes[:, 1], nodes[:, 0]
    return v


@pytest.mark.parametrize("case", sorted(CASES))
def test_exactly_degenerate_gradients_match_finite_differences(case):
    make_mesh, num_modes, direction = CASES[case]
    nodes, elements = make_mesh()
    data = eigendata(nodes, elements, num_modes)
    assert _exact_pairs(data) >= 2, "the test mesh must have exactly degenerate pairs"
    weights = cluster_weights(data, seed=3)

    def losses(x):
        d = eigendata(x, elements, num_modes)
        lam = d.eigenbasis.eigenvalues
        return torch.stack(
            [
                (weights * lam).sum(),
                cluster_moment_loss(d, weights),
                mf_signal(d, direction, use_coupling=True) * 10.0,
            ]
        )

    directions = fd_directions(nodes, elements, 1, seed=2)
    size = float(nodes.abs().max())
    directions.append((_ellipse_at_45_degrees(nodes), 1e-5 * size))
    exact, finite = directional_derivatives(losses, nodes, directions)
    assert np.isfinite(exact).all()
    errors = relative_error(exact, finite)
    assert (errors < 1e-5).all(), (errors, exact, finite)


def test_eigenvalues_alone_miss_the_within_cluster_term():
    """Disk, gradient at 45 degrees, ellipse deformation at 45 degrees: the first-order
    change of every eigenvalue is zero (the pairs split symmetrically), yet the signal
    changes at first order through the off-diagonal block of the reduced stiffness."""
    make_mesh, num_modes, direction = CASES["disk"]
    nodes, elements = make_mesh()
    directions = [(_ellipse_at_45_degrees(nodes), 1e-5)]

    def signal(use_coupling):
        return lambda x: mf_signal(
            eigendata(x, elements, num_modes), direction, use_coupling=use_coupling
        )[None]

    with_coupling, finite = directional_derivatives(signal(True), nodes, directions)
    diagonal_only, _ = directional_derivatives(signal(False), nodes, directions)
    assert relative_error(with_coupling, finite)[0] < 1e-6
    # the size of the miss depends on the (arbitrary) basis the solver returns inside each
    # degenerate pair; it is ~1e-2 here, four orders of magnitude above the exact gradient's
    assert relative_error(diagonal_only, finite)[0] > 1e-3
