"""The discretisation error of mesh bases in the error bar: P1 versus P2 on one mesh.

Reference: P2 on the uniformly refined mesh (the same polygon/polyhedron) at the same
cutoff, so the measured error is the finite-element error (plus the truncation error the
bar also covers).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from skfem import MeshTet, MeshTri

import mf_dmri as mf
from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.fem import cross_section_eigenbasis, mesh_eigenbasis
from mf_dmri.fem.polygon import triangulate_polygon
from mf_dmri.fem.resolution import ResolutionWarning
from mf_dmri.signal.compartment import Compartment
from mf_dmri.signal.discretisation import eigenvalue_change
from mf_dmri.signal.error_estimate import signal_with_error
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms

#: A hexagon cross-section of circumradius 4 um (the prism axis along lab z).
HEXAGON = 4 * um * np.array([[np.cos(a), np.sin(a)] for a in np.arange(6) * np.pi / 3])
D = 2 * um2_per_ms


def _pieces():
    bvalues = [1000 * s_per_mm2, 3000 * s_per_mm2]
    directions = [[1.0, 0.0, 0.0], [0.6, 0.8, 0.0]]
    return mf.Acquisition.from_bvalues(mf.PGSE(10 * ms, 30 * ms), bvalues, directions).pieces()


def _prism(basis) -> Compartment:
    domain = ProductDomain(factors=(basis,), free_axes=torch.tensor([[0.0, 0.0, 1.0]]))
    return Compartment(domain, D)


def _hexagon_case(order: int):
    nodes, triangles = triangulate_polygon(HEXAGON, 2.5 * um)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolutionWarning)
        basis = cross_section_eigenbasis(nodes, triangles, order=order, length_scale=2 * um)
        result = signal_with_error(_prism(basis), _pieces())
        fine = MeshTri(nodes.T, triangles.T).refined(2)
        cutoff = max(result.max_eigenvalues)
        reference = cross_section_eigenbasis(fine, order=2, max_eigenvalue=4 * cutoff)
    return result, mf.signal(_prism(reference), _pieces())


@pytest.mark.parametrize("order", [1, 2])
def test_bar_covers_the_error_of_a_coarse_cross_section(order):
    result, reference = _hexagon_case(order)
    error = (result.signal - reference).abs()
    assert bool((error <= result.error_bar).all()), (error, result.error_bar)
    # not vacuous: within 10x of the true error
    assert bool((result.error_bar <= 10 * error).all()), (error, result.error_bar)


def test_p1_discretisation_term_is_nonzero_and_of_the_right_size():
    result, reference = _hexagon_case(1)
    error = (result.signal - reference).abs()
    disc = result.discretisation_error
    # the coarse P1 error is dominated by the discretisation: the term alone is its size
    assert bool((error > 10 * result.truncation_error).all())
    assert bool((disc >= 0.9 * error).all()) and bool((disc <= 3 * error).all()), (disc, error)


def test_p2_discretisation_term_is_smaller_than_p1():
    p1, _ = _hexagon_case(1)
    p2, reference = _hexagon_case(2)
    assert bool((p2.discretisation_error > 0).all())
    assert bool((p2.discretisation_error < 0.5 * p1.discretisation_error).all())
    assert bool(((p2.signal - reference).abs() <= p2.error_bar).all())


def test_analytic_factor_has_no_discretisation_term():
    result = signal_with_error(mf.Compartment(mf.slab(6 * um), D), _pieces())
    assert bool((result.discretisation_error == 0).all())


def test_default_mesh_basis_is_p2_with_a_p1_companion():
    """P2 by default (benchmarks/results/element_order.md): more dofs than P1 on one mesh,
    lower (more accurate) eigenvalues, and the bar's companion is the P1 solve."""
    nodes, triangles = triangulate_polygon(HEXAGON, 2.5 * um)
    default = cross_section_eigenbasis(nodes, triangles, length_scale=5 * um)
    linear = cross_section_eigenbasis(nodes, triangles, length_scale=5 * um, order=1)
    assert default.discretisation.order == 2 and default.discretisation.companion_order == 1
    assert bool((default.eigenvalues[1:4] < linear.eigenvalues[1:4]).all())
    companion = default.discretisation.companion(float(default.eigenvalues[-1]), default.axes)
    count = min(companion.num_modes, linear.num_modes)
    torch.testing.assert_close(companion.eigenvalues[:count], linear.eigenvalues[:count])


def test_mesh_model_follows_truncation_rotation_and_scaling():
    nodes, triangles = triangulate_polygon(HEXAGON, 2.5 * um)
    basis = cross_section_eigenbasis(nodes, triangles, length_scale=5 * um, order=1)
    model = basis.discretisation
    assert model is not None and model.order == 1 and model.companion_order == 2
    assert basis.truncated(float(basis.eigenvalues[3])).discretisation is model
    assert basis.first_modes(2).discretisation is model
    assert basis.rotated(torch.eye(3)).discretisation is model
    scaled = basis.scaled(2.0).discretisation
    np.testing.assert_allclose(scaled.nodes, 2.0 * model.nodes)
    companion = model.companion(float(basis.eigenvalues[-1]), basis.axes)
    assert companion.num_modes >= basis.num_modes  # P2 eigenvalues are lower
    assert bool((companion.eigenvalues[1:4] < basis.eigenvalues[1:4]).all())


def test_eigenvalue_change_is_zero_for_identical_bases_and_relative_otherwise():
    nodes, triangles = triangulate_polygon(HEXAGON, 2.5 * um)
    basis = cross_section_eigenbasis(nodes, triangles, length_scale=5 * um, order=1)
    assert eigenvalue_change(basis, basis) == 0.0
    shifted = replace(basis, eigenvalues=basis.eigenvalues * 1.05)
    assert eigenvalue_change(shifted, basis) == pytest.approx(0.05)


@pytest.mark.slow
def test_bar_covers_the_error_of_a_coarse_sphere_mesh():
    """A 409-tetrahedron sphere: the P1 error (1.6e-3) is almost all discretisation."""
    from mf_dmri.geometry import sphere, tetrahedralize

    volume = tetrahedralize(sphere(3 * um, subdivisions=2))
    pieces = _pieces()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolutionWarning)
        basis = mesh_eigenbasis(volume.nodes, volume.elements, length_scale=1.5 * um, order=1)
        result = signal_with_error(Compartment(basis, D), pieces)
        fine = MeshTet(volume.nodes.T, volume.elements.T).refined()
        reference_basis = mesh_eigenbasis(fine, order=2, length_scale=0.75 * um)
    reference = mf.signal(Compartment(reference_basis, D), pieces)
    error = (result.signal - reference).abs()
    assert bool((error > 1e-4).all())
    assert bool((error <= result.error_bar).all()), (error, result.error_bar)
    assert bool((result.error_bar <= 3 * error).all()), (error, result.error_bar)


def test_cached_basis_carries_its_mesh(tmp_path):
    from mf_dmri.io.eigen_cache import cached_mesh_eigenbasis

    nodes, triangles = triangulate_polygon(HEXAGON, 1.5 * um)
    for _ in range(2):  # computed, then loaded from the cache
        basis = cached_mesh_eigenbasis(
            nodes, triangles, cache_dir=tmp_path, order=2, length_scale=5 * um
        )
        assert basis.discretisation is not None and basis.discretisation.order == 2
    assert len(list(tmp_path.iterdir())) == 1


def test_a_basis_without_its_mesh_says_so():
    from mf_dmri.signal.discretisation import DiscretisationWarning

    nodes, triangles = triangulate_polygon(HEXAGON, 1.5 * um)
    basis = cross_section_eigenbasis(nodes, triangles, length_scale=5 * um, order=1)
    bare = replace(basis, discretisation=None)
    with pytest.warns(DiscretisationWarning, match="not in the error bar"):
        result = signal_with_error(_prism(bare), _pieces())
    assert bool((result.discretisation_error == 0).all())


def test_the_bar_propagates_the_accepted_basis_once(monkeypatch):
    """The discretisation term reuses the accepted signal of the truncation ladder: one
    propagation per ladder level plus one of the companion, and the same bar as a bound
    computed from scratch."""
    from mf_dmri.signal import discretisation
    from mf_dmri.signal import error_estimate as estimate

    nodes, triangles = triangulate_polygon(HEXAGON, 2.5 * um)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResolutionWarning)
        basis = cross_section_eigenbasis(nodes, triangles, length_scale=2 * um)
    calls = []
    for module in (estimate, discretisation):

        def counting(b, *args, _original=module.factor_signal, **kwargs):
            calls.append(b.num_modes)
            return _original(b, *args, **kwargs)

        monkeypatch.setattr(module, "factor_signal", counting)
    result = signal_with_error(_prism(basis), _pieces())
    levels = calls[:-1]
    assert len(set(levels)) == len(levels), calls  # no level propagated twice
    assert (
        calls[-1]
        == basis.discretisation.companion(max(result.max_eigenvalues), basis.axes).num_modes
    )
    fresh = discretisation.discretisation_error(basis, basis, D, _pieces())
    torch.testing.assert_close(result.discretisation_error, fresh, rtol=1e-12, atol=1e-15)
