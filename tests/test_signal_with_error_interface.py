"""``signal_with_error`` is the one estimator: its propagation error is the tolerance of
the propagator actually used (the measured-cost chooser by default, as ``signal``), and a
fixed cutoff pair gives the signal at the finer cutoff with twice the change as the bar.

References: the signal of the same bases evaluated directly (``signal`` on the truncated
bases), and the chooser's own decision on the accepted basis."""

import importlib
from dataclasses import replace

import numpy as np
import pytest
import torch

import mf_dmri as mf
from mf_dmri.signal import DenseExponential, KrylovExponential, signal, signal_with_error
from mf_dmri.signal.propagation import planned_propagator, prepare_factor
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms

D = 2 * um2_per_ms


def _acq():
    return mf.multi_shell(mf.PGSE(10 * ms, 30 * ms), [1000 * s_per_mm2, 4000 * s_per_mm2], 3)


def test_propagation_error_is_that_of_the_propagator_used():
    slab = mf.slab(10 * um, max_eigenvalue=(700 / (10 * um)) ** 2)  # 220 modes: not dense
    compartment = mf.Compartment(slab, D)
    acq = _acq()
    result = signal_with_error(compartment, acq, max_eigenvalue=(400 / (10 * um)) ** 2)
    basis = slab.factors[0].truncated(result.max_eigenvalues[0])
    chosen = planned_propagator(prepare_factor(basis, acq.pieces()))
    assert not isinstance(chosen, DenseExponential)  # the default chooser, not dense
    np.testing.assert_allclose(result.propagation_error.numpy(), chosen.tolerance, rtol=1e-12)
    for propagator in (DenseExponential(), KrylovExponential(tolerance=1e-8)):
        given = signal_with_error(
            compartment, acq, max_eigenvalue=(400 / (10 * um)) ** 2, propagator=propagator
        )
        np.testing.assert_allclose(given.propagation_error.numpy(), propagator.tolerance)
        assert float((given.signal - result.signal).abs().max()) < 1e-7


def test_fixed_pair_reports_the_finer_cutoff_with_twice_the_change():
    sphere = mf.sphere(5 * um)  # rebuilt from its source at both cutoffs
    acq = _acq()
    lam = (10 / (5 * um)) ** 2
    result = signal_with_error(mf.Compartment(sphere, D), acq, max_eigenvalue=lam)
    coarse = signal(mf.Compartment(mf.sphere(5 * um, max_eigenvalue=lam), D), acq)
    fine = signal(mf.Compartment(mf.sphere(5 * um, max_eigenvalue=2 * lam), D), acq)
    np.testing.assert_allclose(result.signal.numpy(), fine.numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(
        result.truncation_error.numpy(), 2 * (coarse - fine).abs().numpy(), rtol=1e-9, atol=1e-15
    )
    assert result.max_eigenvalues[0] <= 2 * lam


def test_fixed_pair_keeps_derivatives():
    radius = torch.tensor(5 * um, dtype=torch.float64, requires_grad=True)
    result = signal_with_error(
        mf.Compartment(mf.sphere(radius), D), _acq(), max_eigenvalue=(10 / (5 * um)) ** 2
    )
    (gradient,) = torch.autograd.grad(result.signal.real.sum(), radius)
    assert torch.isfinite(gradient) and float(gradient) != 0.0


def _two_compartments(diffusivity):
    return [
        mf.Compartment(mf.cylinder(3 * um, axis=(0.0, 0.0, 1.0)), diffusivity, volume_fraction=0.6),
        mf.Compartment(mf.sphere(4 * um), diffusivity, volume_fraction=0.4),
    ]


def test_adaptive_signal_equals_the_signal_of_its_accepted_bases():
    # without derivatives the check's own factor signals are reused for the result
    acq = _acq()
    result = signal_with_error(_two_compartments(D), acq)
    bases = [mf.cylinder(3 * um, axis=(0.0, 0.0, 1.0)), mf.sphere(4 * um)]
    fixed = [
        mf.Compartment(
            replace(b, factors=(b.factors[0].source.basis(lam, b.factors[0].axes, axial=False),)),
            D,
            volume_fraction=w,
        )
        for b, lam, w in zip(bases, result.max_eigenvalues, (0.6, 0.4), strict=True)
    ]
    direct = signal(fixed, acq)
    np.testing.assert_allclose(result.signal.numpy(), direct.numpy(), rtol=0, atol=1e-12)


def test_adaptive_signal_keeps_derivatives_in_the_diffusivity():
    acq = _acq()
    rate = torch.tensor(D, dtype=torch.float64, requires_grad=True)
    result = signal_with_error(_two_compartments(rate), acq)
    (gradient,) = torch.autograd.grad(result.signal.real.sum(), rate)
    step = 1e-4 * D
    up = signal_with_error(_two_compartments(D + step), acq)
    down = signal_with_error(_two_compartments(D - step), acq)
    expected = float((up.signal.real.sum() - down.signal.real.sum()) / (2 * step))
    assert up.max_eigenvalues == result.max_eigenvalues == down.max_eigenvalues
    assert abs(float(gradient) - expected) <= 1e-6 * abs(expected)


def test_removed_estimator_is_gone():
    module = importlib.import_module("mf_dmri.signal.error_estimate")

    assert not hasattr(module, "signal_with_error_estimate")
    assert not hasattr(module, "SignalWithError")
    with pytest.raises(ValueError, match="needs max_eigenvalue"):
        signal_with_error(
            mf.Compartment(mf.sphere(5 * um), D), _acq(), reference_max_eigenvalue=1.0
        )
