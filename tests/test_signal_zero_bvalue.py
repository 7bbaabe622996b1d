"""Exact derivatives with respect to b at b = 0 (mf_dmri/signal/zero_bvalue.py).

``Acquisition.from_bvalues`` sets the amplitude sqrt(b / b_unit), which has no derivative
at b = 0; before, dE/db there came out 0.  References:

* finite differences of the signal itself in b (one-sided at b = 0, Richardson-
  extrapolated: first derivative to O(h^3), second to O(h^2));
* the small-q limit: the Gaussian phase approximation is exact to first order in b, so
  dE/db at 0 = ln E_GPA(b) / b for the closed forms of Neuman (1974, cylinder) and Murday
  and Cotts (1968, sphere), i.e. minus the apparent diffusion coefficient along the
  direction.

Explicit cutoffs keep the same modes at every b (the acquisition-chosen one depends on q).
"""

import math

import numpy as np
import pytest
import torch

from mf_dmri.analytic import cylinder, sphere
from mf_dmri.analytic.gpa import gpa_pgse_cylinder, gpa_pgse_sphere
from mf_dmri.sequences import PGSE, Acquisition, SampledWaveform
from mf_dmri.signal import Compartment, signal, signal_with_error
from mf_dmri.units import ms, um

F64 = torch.float64
RADIUS, DIFFUSIVITY, DELTA, BIG_DELTA = 5 * um, 2e-9, 10 * ms, 30 * ms
DISK_CUTOFF = 400 / RADIUS**2
BALL_CUTOFF = 200 / RADIUS**2
# the direction of the b = 0 row: perpendicular to the cylinder's axis (z) and oblique
DIRECTIONS = [[0.0, 1.0, 0.0], [0.6, 0.0, 0.8]]


def _signal(compartment, bvalues, directions=DIRECTIONS, call=signal):
    acquisition = Acquisition.from_bvalues(
        PGSE(DELTA, BIG_DELTA), bvalues, torch.tensor(directions, dtype=F64)
    )
    result = call(compartment, acquisition)
    return (result if call is signal else result.signal).real


def _one_sided(function, step: float) -> tuple[float, float]:
    """(f'(0), f''(0)) from f(0), f(h), f(2h), f(4h), Richardson-extrapolated."""
    f0, f1, f2, f4 = (function(k * step) for k in (0, 1, 2, 4))

    def first(h, fa, fb):  # (-3 f0 + 4 f(h) - f(2h)) / 2h, error O(h^2)
        return (-3 * f0 + 4 * fa - fb) / (2 * h)

    d1 = (4 * first(step, f1, f2) - first(2 * step, f2, f4)) / 3
    d2 = 2 * (f2 - 2 * f1 + f0) / (2 * step) ** 2 - (f4 - 2 * f2 + f0) / (4 * step) ** 2
    return d1, d2


@pytest.mark.parametrize("shape", ["cylinder", "sphere"])
@pytest.mark.parametrize("row", [0, 1])
def test_first_and_second_b_derivatives_at_zero(shape, row):
    basis = (
        cylinder(RADIUS, max_eigenvalue=DISK_CUTOFF)
        if shape == "cylinder"
        else sphere(RADIUS, max_eigenvalue=BALL_CUTOFF)
    )
    compartment = Compartment(basis, DIFFUSIVITY)
    # row `row` at b = 0, the other at 1000 s/mm^2
    bvalues = torch.tensor([1e9, 1e9], dtype=F64)
    bvalues[row] = 0.0
    bvalues.requires_grad_(True)
    values = _signal(compartment, bvalues)
    (slope,) = torch.autograd.grad(values[row], bvalues, create_graph=True)
    (curvature,) = torch.autograd.grad(slope[row], bvalues)
    assert float(slope[1 - row].detach()) == 0.0  # each row depends on its own b only

    def at(b):
        shifted = bvalues.detach().clone()
        shifted[row] = b
        return float(_signal(compartment, shifted)[row])

    finite_slope, finite_curvature = _one_sided(at, 2e6)
    assert float(slope[row]) < 0  # the signal falls as b grows
    assert float(slope[row]) == pytest.approx(finite_slope, rel=1e-6)
    assert float(curvature[row]) == pytest.approx(finite_curvature, rel=1e-3)
    assert float(curvature[row]) > 0
    if shape == "sphere" or row == 0:  # the sphere is isotropic; row 0 is perpendicular
        amplitude = 1e-3  # [T/m]: b of it, and the GPA log, exactly quadratic in G
        unit_b = float(
            Acquisition(PGSE(DELTA, BIG_DELTA), torch.tensor([DIRECTIONS[row]]), [1.0]).bvalues()
        )
        gpa = gpa_pgse_cylinder if shape == "cylinder" else gpa_pgse_sphere
        small_q = math.log(float(gpa(amplitude, DELTA, BIG_DELTA, RADIUS, DIFFUSIVITY)))
        expected = small_q / (unit_b * amplitude**2)
        assert float(slope[row]) == pytest.approx(expected, rel=2e-5)
        # restricted: slower than free diffusion, exp(-b D) has slope -D
        assert -DIFFUSIVITY < float(slope[row]) < 0


def test_mixed_derivative_with_the_diffusivity_at_zero_b():
    """d2E/(db dD) at b = 0: the slope keeps its graph in D (central differences in D)."""
    basis = cylinder(RADIUS, max_eigenvalue=DISK_CUTOFF)
    bvalues = torch.tensor([0.0, 1e9], dtype=F64, requires_grad=True)

    def slope(diffusivity):
        values = _signal(Compartment(basis, diffusivity), bvalues)
        (gradient,) = torch.autograd.grad(values[0], bvalues, create_graph=True)
        return gradient[0]

    diffusivity = torch.tensor(DIFFUSIVITY, dtype=F64, requires_grad=True)
    (mixed,) = torch.autograd.grad(slope(diffusivity), diffusivity)
    step = 1e-3 * DIFFUSIVITY
    finite = (float(slope(DIFFUSIVITY + step)) - float(slope(DIFFUSIVITY - step))) / (2 * step)
    assert float(mixed) == pytest.approx(finite, rel=1e-5)
    assert float(mixed) != 0.0


def test_signal_with_error_carries_the_b_derivative_at_zero():
    """The adaptive-cutoff path (a sphere without cutoff): the same slope as the signal of
    the basis it settles on, and the value unchanged by the correction."""
    bvalues = torch.tensor([0.0, 1e9, 3e9], dtype=F64, requires_grad=True)
    directions = [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]
    compartment = Compartment(sphere(RADIUS), DIFFUSIVITY)
    values = _signal(compartment, bvalues, directions, call=signal_with_error)
    (slope,) = torch.autograd.grad(values[0], bvalues)
    assert float(values[0]) == pytest.approx(1.0, abs=1e-12)

    def at(b):
        shifted = torch.tensor([b, 1e9, 3e9], dtype=F64)
        return float(_signal(compartment, shifted, directions, call=signal_with_error)[0])

    finite, _ = _one_sided(at, 2e6)
    assert float(slope[0]) == pytest.approx(finite, rel=1e-5)


def test_coupled_basis_b_derivative_at_zero():
    """A permeable two-compartment square (a coupled basis): dE/db at b = 0 against
    one-sided differences, through signal and signal_with_error."""
    from permeable_helpers import square_in_square

    from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh

    nodes, elements, labels = square_in_square(8 * um, 4 * um, 8)
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    parameters = PermeableParameters(
        diffusivity=(2e-9, 1e-9), permeability=1e-5, t2=(0.08, 0.05), spin_density=(1.0, 0.8)
    )
    basis = permeable_eigenbasis(mesh, parameters, num_modes=60)
    directions = [[1.0, 0, 0], [0.6, 0.8, 0.0]]
    for call in (signal, signal_with_error):
        bvalues = torch.tensor([0.0, 1e9], dtype=F64, requires_grad=True)
        values = _signal(basis, bvalues, directions, call=call)
        (slope,) = torch.autograd.grad(values[0], bvalues)

        def at(b, call=call):
            shifted = torch.tensor([b, 1e9], dtype=F64)
            return float(_signal(basis, shifted, directions, call=call)[0])

        finite, _ = _one_sided(at, 2e6)
        assert float(slope[0]) < 0
        assert float(slope[0]) == pytest.approx(finite, rel=1e-5), call.__name__


def test_zero_direction_rows_and_detached_bvalues_are_unchanged():
    """A b = 0 row with no direction has nothing to grow along (derivative 0, as the
    b-tensor's); b-values without gradients record nothing."""
    directions = torch.tensor([[0.0, 0, 0], [1.0, 0, 0]], dtype=F64)
    bvalues = torch.tensor([0.0, 1e9], dtype=F64, requires_grad=True)
    acquisition = Acquisition.from_bvalues(PGSE(DELTA, BIG_DELTA), bvalues, directions)
    assert acquisition.zero_bvalues is None
    values = signal(
        Compartment(sphere(RADIUS, max_eigenvalue=BALL_CUTOFF), DIFFUSIVITY), acquisition
    )
    (slope,) = torch.autograd.grad(values.real[0], bvalues)
    assert float(slope[0]) == 0.0
    plain = Acquisition.from_bvalues(
        PGSE(DELTA, BIG_DELTA), bvalues.detach(), torch.tensor(DIRECTIONS, dtype=F64)
    )
    assert plain.zero_bvalues is None
    with_rows = Acquisition.from_bvalues(
        PGSE(DELTA, BIG_DELTA), bvalues, torch.tensor(DIRECTIONS, dtype=F64)
    )
    assert with_rows.zero_bvalues.rows.tolist() == [0]
    np.testing.assert_allclose(
        with_rows.zero_bvalues.unit_bvalues.numpy(),
        (with_rows.bvalues()[1:] / with_rows.amplitudes[1:] ** 2).detach().numpy(),
        rtol=1e-12,
    )


def test_unrefocused_waveform_refuses_b_gradients_at_zero():
    """dE/db does not exist at b = 0 when E has a term linear in G: the message says so
    and names the amplitude route."""
    waveform = SampledWaveform(torch.tensor([1.0, 1.0, 0.0]), 1 * ms)
    bvalues = torch.tensor([0.0, 1e8], dtype=F64, requires_grad=True)
    directions = torch.tensor(DIRECTIONS, dtype=F64)
    with pytest.raises(ValueError, match="dE/db at b = 0 does not exist.*amplitudes"):
        Acquisition.from_bvalues(waveform, bvalues, directions, allow_unrefocused=True)
    # without gradients, or without a b = 0 row, it is accepted
    Acquisition.from_bvalues(waveform, bvalues.detach(), directions, allow_unrefocused=True)
