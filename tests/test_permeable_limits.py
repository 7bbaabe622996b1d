"""Permeability limits: kappa = 0 (independent compartments), kappa -> infinity (one merged
domain), monotonicity in kappa."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import pgse_amplitude, pgse_pieces
from permeable_helpers import split_rectangle

from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.fem import PermeableParameters, mesh_eigenbasis, permeable_eigenbasis, permeable_mesh
from mf_dmri.signal import Compartment, signal

UM, MS = 1e-6, 1e-3
FREE_Z = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)


@pytest.fixture(scope="module")
def rectangle():
    nodes, elements, labels = split_rectangle(10 * UM, (2 * UM, 3 * UM), 20, (4, 6))
    return nodes, elements, labels, permeable_mesh(nodes, elements, element_labels=labels)


def _pieces(direction=(1.0, 1.0, 0.0)):
    amplitudes = pgse_amplitude([0.0, 1e9, 3e9], 5 * MS, 20 * MS)
    return pgse_pieces(5 * MS, 20 * MS, amplitudes, direction=direction)


def test_zero_permeability_equals_independent_compartments(rectangle):
    """kappa = 0: the coupled MF equals the impermeable Compartment path (Neumann bases of
    each label, weights V_c s_c exp(-TE/T2_c)) with different D, T2 and spin density."""
    nodes, elements, labels, mesh = rectangle
    diffusivity, t2, density = (1e-9, 2.5e-9), (40 * MS, 90 * MS), (1.0, 0.7)
    max_rate = 1e5
    params = PermeableParameters(diffusivity, permeability=0.0, t2=t2, spin_density=density)
    coupled = signal(permeable_eigenbasis(mesh, params, max_rate=max_rate), _pieces())
    compartments = []
    for label in (0, 1):
        chosen = labels == label
        basis = mesh_eigenbasis(
            nodes,
            elements[chosen],
            max_eigenvalue=(max_rate - 1 / t2[label]) / diffusivity[label],
            order=1,
        )
        domain = ProductDomain((basis,), FREE_Z)
        compartments.append(
            Compartment(domain, diffusivity[label], t2=t2[label], spin_density=density[label])
        )
    independent = signal(compartments, _pieces())
    assert torch.allclose(coupled, independent, rtol=0, atol=1e-10)
    assert float(coupled[-1].real) < 0.9 * float(coupled[0].real)  # the test is not trivial


def test_infinite_permeability_approaches_the_merged_domain(rectangle):
    """Equal D and density: as kappa grows the signal tends to the single-domain (merged
    mesh) signal, with an error ~ 1/kappa (fitted exponent within 0.1 of -1)."""
    nodes, elements, _, mesh = rectangle
    merged = mesh_eigenbasis(nodes, elements, max_eigenvalue=2e13, order=1)
    reference = signal(Compartment(ProductDomain((merged,), FREE_Z), 2e-9), _pieces())
    kappas = np.array([1e-2, 1e-1, 1.0])
    errors = []
    for kappa in kappas:
        basis = permeable_eigenbasis(
            mesh, PermeableParameters(2e-9, permeability=kappa), max_rate=2e-9 * 2e13
        )
        errors.append(float((signal(basis, _pieces()) - reference).abs().max()))
    slope = np.polyfit(np.log(kappas), np.log(errors), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1), (errors, slope)
    assert errors[-1] < 5e-5


def test_signal_and_rates_are_monotone_in_permeability():
    """Every rate is non-decreasing in kappa (dA/dkappa = Q is positive semi-definite, so
    Courant-Fischer applies).  The b-weighted signal of two compartments with different D,
    probed parallel to the interface (restriction along the gradient weak: 20 um long,
    sqrt(2 D Delta) <= 14 um), decreases strictly with kappa: from the sum of the two
    compartments' signals (kappa = 0) towards the one of the exchange-averaged medium, as
    Jensen's inequality on the Karger model implies at both ends."""
    nodes, elements, labels = split_rectangle(20 * UM, (2 * UM, 3 * UM), 20, (2, 3))
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    pieces = pgse_pieces(
        2 * MS, 40 * MS, pgse_amplitude([1e9, 3e9], 2 * MS, 40 * MS), direction=(1.0, 0, 0)
    )
    kappas = [0.0, *np.logspace(-7, -1, 7)]
    signals, rates = [], []
    for kappa in kappas:
        params = PermeableParameters((1e-9, 2.5e-9), permeability=kappa)
        basis = permeable_eigenbasis(mesh, params, num_modes=40)
        signals.append(signal(basis, pieces).real.numpy())
        rates.append(basis.rates[:30].numpy())
    signals, rates = np.array(signals), np.array(rates)
    assert (np.diff(signals, axis=0) < 0).all(), signals
    assert (np.diff(rates, axis=0) >= -1e-9 * rates.max()).all()
    assert signals[0, 1] - signals[-1, 1] > 0.02  # a visible effect
    assert math.isclose(rates[0, 1], 0.0, abs_tol=1e-9) and rates[1, 1] > 0


def test_slow_exchange_rate_is_the_two_pool_rate(rectangle):
    """Small kappa: the first non-zero rate is k12 + k21 = kappa S (1/V1 + 1/V2) (the
    two-pool exchange rate of Karger et al. 1988) up to O(kappa w / D).  At kappa = 0 the
    two constant modes are degenerate and first-order perturbation theory on that cluster
    gives exactly d(lambda_1)/d(kappa) = S (1/V1 + 1/V2): the adjoint must reproduce it."""
    *_, mesh = rectangle
    area, (v1, v2) = mesh.interface_areas[0], mesh.volumes
    two_pool = area * (1 / v1 + 1 / v2)
    small = permeable_eigenbasis(mesh, PermeableParameters(2e-9, permeability=1e-8), num_modes=5)
    assert float(small.rates[1]) / (1e-8 * two_pool) - 1 == pytest.approx(0, abs=1e-4)
    kappa = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    basis = permeable_eigenbasis(mesh, PermeableParameters(2e-9, permeability=kappa), num_modes=5)
    # rates[0] = rates[1] = 0 form one cluster, spanned by the normalised indicators of the
    # two compartments; the reduced block diag(rates) + coupling has derivative Z^T Q Z.
    block = torch.diag(basis.rates[:2]) + basis.coupling[:2, :2]
    slope = torch.stack(
        [torch.autograd.grad(entry, kappa, retain_graph=True)[0] for entry in block.reshape(-1)]
    ).reshape(2, 2)
    cross = -area / math.sqrt(v1 * v2)
    expected = torch.tensor([[area / v1, cross], [cross, area / v2]], dtype=torch.float64)
    assert torch.allclose(slope, expected, rtol=1e-10, atol=0)
    assert float(torch.linalg.eigvalsh(slope)[1]) == pytest.approx(two_pool, rel=1e-10)
