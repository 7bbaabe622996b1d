"""The library signal on a differentiable mesh basis with EXACTLY degenerate eigenvalues
(symmetric disk mesh): its node gradient matches finite differences because the basis
carries the zero-valued within-cluster stiffness coupling (docs/eigen_derivatives.md),
including on zero-gradient pieces (the PGSE gap)."""

import numpy as np
import torch
from grad_helpers import directional_derivatives, relative_error, symmetric_disk
from helpers import pgse_pieces

from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
from mf_dmri.signal import Compartment, signal

SCALE = 5e-6  # the unit disk mesh scaled to a 5 um radius


def _signal(nodes, elements, use_coupling=True):
    basis = differentiable_mesh_eigenbasis(nodes, elements, num_modes=14)
    if not use_coupling:
        basis = type(basis)(
            basis.eigenvalues, basis.moments, basis.mode_integrals, basis.volume, basis.axes
        )
    domain = ProductDomain((basis,), free_axes=torch.tensor([[0.0, 0.0, 1.0]]))
    direction = (np.sqrt(0.5), np.sqrt(0.5), 0.0)
    pieces = pgse_pieces(5e-3, 15e-3, [0.05, 0.12], direction)
    return signal(Compartment(domain, 2e-9), pieces).real


def test_degenerate_mesh_signal_gradient_matches_finite_differences():
    nodes, elements = symmetric_disk()
    nodes = nodes * SCALE
    lam = differentiable_mesh_eigenbasis(nodes, elements, num_modes=14).eigenvalues
    assert (np.diff(lam.detach().numpy()) < 1e-12 * float(lam[-1])).sum() >= 2
    ellipse = torch.zeros_like(nodes)
    ellipse[:, 0], ellipse[:, 1] = nodes[:, 1], nodes[:, 0]
    rng = np.random.default_rng(1)
    random = torch.tensor(rng.normal(size=nodes.shape)) * SCALE
    directions = [(ellipse / SCALE, 1e-5 * SCALE), (random / SCALE, 1e-6 * SCALE)]
    exact, finite = directional_derivatives(lambda x: _signal(x, elements), nodes, directions)
    assert np.isfinite(exact).all()
    assert (relative_error(exact, finite) < 1e-5).all(), (exact, finite)
    # without the coupling the ellipse derivative is wrong (eigenvalues do not move)
    wrong, _ = directional_derivatives(lambda x: _signal(x, elements, False), nodes, directions[:1])
    assert relative_error(wrong, finite[:, :1]).max() > 1e-3
