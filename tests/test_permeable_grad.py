"""Exact gradients of the coupled MF signal w.r.t. D, kappa, T2, rho and spin density,
checked against central finite differences (also at an exactly degenerate spectrum)."""

from __future__ import annotations

import numpy as np
import torch
from helpers import pgse_amplitude, pgse_pieces
from permeable_helpers import split_rectangle, square_in_square

from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.signal import signal

UM, MS = 1e-6, 1e-3
NAMES = ("diffusivity", "permeability", "t2", "spin_density", "surface_relaxivity")


def _irregular_rectangle():
    """Split rectangle with interior nodes (off the interface) randomly moved: no symmetry."""
    nodes, elements, labels = split_rectangle(8 * UM, (2 * UM, 3 * UM), 8, (3, 4))
    x, y = nodes[:, 0], nodes[:, 1]
    interior = (x > 0) & (x < 8 * UM) & (y > 0) & (y < 5 * UM) & (np.abs(y - 2 * UM) > 1e-12)
    shift = 0.08 * UM * np.random.default_rng(0).standard_normal(nodes.shape)
    return nodes + interior[:, None] * shift, elements, labels


def _flat(values: dict) -> list[tuple[str, int | None, float]]:
    items = []
    for name in NAMES:
        value = values[name]
        if isinstance(value, tuple):
            items += [(name, i, float(v)) for i, v in enumerate(value)]
        else:
            items.append((name, None, float(value)))
    return items


def _parameters(items, values) -> PermeableParameters:
    grouped: dict = {}
    for (name, index, _), value in zip(items, values, strict=True):
        if index is None:
            grouped[name] = value
        else:
            grouped.setdefault(name, []).append(value)
    return PermeableParameters(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in grouped.items()}
    )


def _check_gradients(mesh, values, pieces, num_modes, step=1e-4, rtol=1e-5):
    items = _flat(values)

    def loss(inputs):
        basis = permeable_eigenbasis(mesh, _parameters(items, inputs), num_modes=num_modes)
        result = signal(basis, pieces)
        return (result.real**2).sum() + result.imag.sum()

    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for *_, v in items]
    loss(leaves).backward()
    errors = {}
    for k, (name, index, value) in enumerate(items):
        plus = [v for *_, v in items]
        minus = list(plus)
        plus[k], minus[k] = value * (1 + step), value * (1 - step)
        fd = float(loss(plus) - loss(minus)) / (2 * step * value)
        errors[(name, index)] = abs(float(leaves[k].grad) - fd) / abs(fd)
    assert max(errors.values()) < rtol, errors
    print({k: f"{v:.1e}" for k, v in errors.items()})


def test_gradients_match_finite_differences():
    """All nine parameters of a two-compartment mesh with exchange, bulk and surface
    relaxation; central differences with relative step 1e-4 (measured agreement ~1e-7)."""
    nodes, elements, labels = _irregular_rectangle()
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    values = {
        "diffusivity": (1e-9, 2e-9),
        "permeability": 2e-5,
        "t2": (40 * MS, 70 * MS),
        "spin_density": (1.0, 0.8),
        "surface_relaxivity": (1e-5, 3e-6),
    }
    pieces = pgse_pieces(
        5 * MS, 20 * MS, pgse_amplitude([1e9, 3e9], 5 * MS, 20 * MS), direction=(1, 0.5, 0)
    )
    _check_gradients(mesh, values, pieces, num_modes=30)


def test_gradients_at_a_degenerate_spectrum():
    """Square in a square on a crossed grid (symmetric under the square's symmetry group):
    exactly degenerate rate pairs.  The perturbations keep the symmetry, so finite
    differences are well defined; the adjoint never divides by the zero gaps inside a
    cluster (the within-cluster term goes through the coupling output)."""
    nodes, elements, labels = square_in_square(6 * UM, 2 * UM, 6)
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    values = {
        "diffusivity": (2e-9, 1e-9),
        "permeability": 3e-5,
        "t2": (60 * MS, 30 * MS),
        "spin_density": (1.0, 1.0),
        "surface_relaxivity": 2e-6,  # the enclosed compartment has no outer boundary
    }
    params = _parameters(_flat(values), [v for *_, v in _flat(values)])
    basis = permeable_eigenbasis(mesh, params, num_modes=24)
    rates = basis.rates.numpy()
    gaps = np.diff(rates) / rates[-1]
    assert (gaps < 1e-10).sum() >= 3  # several exactly degenerate pairs
    pieces = pgse_pieces(
        4 * MS, 15 * MS, pgse_amplitude([2e9], 4 * MS, 15 * MS), direction=(1, 0.3, 0)
    )
    _check_gradients(mesh, values, pieces, num_modes=basis.num_modes)


def test_permeability_gradient_at_zero_permeability():
    """At kappa = 0 the two constant modes form a cluster at rate 0 and exchange starts at
    first order; the adjoint derivative matches the second-order one-sided difference
    (-3 E(0) + 4 E(h) - E(2h)) / (2 h) to 1e-5."""
    nodes, elements, labels = _irregular_rectangle()
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    pieces = pgse_pieces(
        5 * MS, 20 * MS, pgse_amplitude([2e9], 5 * MS, 20 * MS), direction=(1, 0.5, 0)
    )

    def value(kappa):
        params = PermeableParameters((1e-9, 2e-9), permeability=kappa)
        return signal(permeable_eigenbasis(mesh, params, num_modes=30), pieces)[0].real

    kappa = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    value(kappa).backward()
    step = 1e-8
    one_sided = (-3 * value(0.0) + 4 * value(step) - value(2 * step)) / (2 * step)
    assert abs(float(kappa.grad) - float(one_sided)) < 1e-5 * abs(float(one_sided))
