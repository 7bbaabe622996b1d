"""Exact derivatives under rigid motions and uniform scaling (closed forms).

Scaling a domain by r multiplies the Neumann eigenvalues by r^-2, the first moments by r,
the mode integrals by r^(d/2) and the volume by r^d (e.g. Grebenkov, Rev. Mod. Phys. 79,
1077 (2007), the scaling of the Laplace eigenproblem), so with ``nodes = r * unit_nodes``:
d lambda_i / dr = -2 lambda_i / r exactly, for every mode, degenerate or not, and the
P1 discretisation preserves this exactly.  Translations and rotations leave the eigenvalues
unchanged, so their gradient has no rigid-motion component.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from grad_helpers import eigendata, irregular_ellipsoid, symmetric_disk

from mf_dmri.units import um


@pytest.mark.parametrize("case", ["ellipsoid", "symmetric_disk"])
def test_radius_derivatives_are_exact(case):
    unit, elements = irregular_ellipsoid(seed=4) if case == "ellipsoid" else symmetric_disk()
    dim = unit.shape[1]
    radius = torch.tensor(3.0 * um, dtype=torch.float64, requires_grad=True)
    data = eigendata(radius * unit, elements, 10)
    basis = data.eigenbasis
    lam = basis.eigenvalues
    r = radius.detach()
    for i in range(1, lam.numel()):
        (d_lam,) = torch.autograd.grad(lam[i], radius, retain_graph=True)
        assert float(d_lam) == pytest.approx(float(-2 * lam[i].detach() / r), rel=1e-12)
    moment_norm = (basis.moments**2).sum()
    integral_norm = (basis.mode_integrals**2).sum()
    for value, power in ((moment_norm, 2), (integral_norm, dim), (basis.volume, dim)):
        (deriv,) = torch.autograd.grad(value, radius, retain_graph=True)
        assert float(deriv) == pytest.approx(float(power * value.detach() / r), rel=1e-12)
    (d_zero,) = torch.autograd.grad(lam[0], radius, retain_graph=True)
    assert abs(float(d_zero)) < 1e-12 * float(2 * lam[1].detach() / r)


def test_rigid_motions_do_not_change_eigenvalues():
    nodes, elements = irregular_ellipsoid(seed=5)
    x = nodes.clone().requires_grad_(True)
    lam = eigendata(x, elements, 8).eigenbasis.eigenvalues
    weights = torch.linspace(1.0, 2.0, lam.numel(), dtype=torch.float64)
    (grad,) = torch.autograd.grad((weights * lam).sum(), x)
    scale = float(grad.abs().sum())
    np.testing.assert_allclose(grad.sum(0).numpy(), 0.0, atol=1e-11 * scale)  # translations
    torque = torch.linalg.cross(nodes, grad).sum(0)  # infinitesimal rotations
    np.testing.assert_allclose(torque.numpy(), 0.0, atol=1e-11 * scale)
