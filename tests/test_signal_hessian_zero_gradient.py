"""Exact second derivatives of the signal with respect to the gradient at g = 0.

At g = 0 every value-based shortcut of the propagation (zero-gradient pieces propagated as
pure decay, the reachable subspace, the canonical direction of an isotropic basis, the
parity of a symmetric one) would see no gradient and drop its dependence; the derivatives
then carry it (``mf_dmri.signal.canonical.hidden_directions``).  Checked against central
differences of the signal itself (Richardson-extrapolated, to 1e-6 relative) and against
the small-q limit, where the Gaussian phase approximation is exact to O(G^2):
d2E/dG2 at 0 = 2 ln E_GPA(G) / G^2 for the closed forms of Neuman (1974, cylinder, slab)
and Murday and Cotts (1968, sphere).  Every basis has an explicit cutoff, so the same
modes are used at every amplitude; the 230-mode ball would take the Krylov propagator by
size, which loses the hidden direction (Hessian 0), so derivatives at g = 0 take the dense
exponential (``propagation.planned_propagator``)."""

import numpy as np
import pytest
import torch
from grad_helpers import symmetric_disk
from helpers import pgse_pieces

from mf_dmri.analytic import cylinder, slab, sphere
from mf_dmri.analytic.gpa import gpa_pgse_cylinder, gpa_pgse_slab, gpa_pgse_sphere
from mf_dmri.eigenbasis import ProductDomain
from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
from mf_dmri.sequences import OGSE, PGSE, Acquisition
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal import Compartment, signal
from mf_dmri.signal.propagation import plan_pieces
from mf_dmri.units import ms, um

F64 = torch.float64
RADIUS, DIFFUSIVITY, DELTA, BIG_DELTA = 5 * um, 2e-9, 10 * ms, 30 * ms
# Explicit cutoffs: the acquisition-chosen cutoff (mf_dmri.signal.cutoff) depends on the
# amplitude, so G = 0 and the finite-difference amplitudes would keep different modes.
# A quarter of the former default ball cutoff (about 230 modes instead of 1,843): the
# small-q limit converges fast in the modes, and the test stays fast.
BALL_CUTOFF = 200 / RADIUS**2
DISK_CUTOFF = 400 / RADIUS**2  # K = 20
SLAB_CUTOFF = 3600 / (2 * RADIUS) ** 2  # K = 60 over the width


def _second_difference(function, curvature: float) -> float:
    """Central second difference at 0, Richardson-extrapolated (error O(step^4)), with
    the step at which |curvature| step^2 = 1e-3 (at most 4 mT/m): the O(step^4) error is
    then ~1e-7 relative and round-off (1e-14 / step^2) far below."""
    step = min(4e-3, 0.03 / max(abs(curvature), 1e-300) ** 0.5)

    def plain(h):
        return (function(h) - 2.0 * function(0.0) + function(-h)) / h**2

    return (4.0 * plain(step / 2) - plain(step)) / 3.0


def _hessian_at_zero(function) -> float:
    amplitude = torch.zeros((), dtype=F64, requires_grad=True)
    return float(torch.autograd.functional.hessian(function, amplitude))


def _acquisition(waveform, amplitude, direction):
    """Amplitudes are >= 0: a negative one is the opposite direction."""
    amplitude = torch.as_tensor(amplitude, dtype=F64)
    sign = -1.0 if float(amplitude.detach()) < 0 else 1.0
    directions = sign * torch.tensor([direction], dtype=F64)
    return Acquisition(waveform, directions, (sign * amplitude).reshape(1))


SHAPES = {
    "cylinder": (
        lambda: cylinder(RADIUS, max_eigenvalue=DISK_CUTOFF),
        lambda g: gpa_pgse_cylinder(g, DELTA, BIG_DELTA, RADIUS, DIFFUSIVITY),
    ),
    "sphere": (
        lambda: sphere(RADIUS, max_eigenvalue=BALL_CUTOFF),
        lambda g: gpa_pgse_sphere(g, DELTA, BIG_DELTA, RADIUS, DIFFUSIVITY),
    ),
    "slab": (
        lambda: slab(2 * RADIUS, max_eigenvalue=SLAB_CUTOFF),
        lambda g: gpa_pgse_slab(g, DELTA, BIG_DELTA, 2 * RADIUS, DIFFUSIVITY),
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("direction", [(1.0, 0.0, 0.0), (0.0, 0.6, 0.8)])
def test_pgse_hessian_at_zero_amplitude(shape, direction):
    build, gpa = SHAPES[shape]
    compartment = Compartment(build(), DIFFUSIVITY)

    def value(amplitude):
        acquisition = _acquisition(PGSE(DELTA, BIG_DELTA), amplitude, direction)
        return signal(compartment, acquisition).real[0]

    exact = _hessian_at_zero(value)
    finite = _second_difference(lambda h: float(value(h)), exact)
    assert exact == pytest.approx(finite, rel=1e-6)
    if direction[0] == 1.0:  # perpendicular to the cylinder axis, along the slab normal
        small_q = 2.0 * float(np.log(gpa(1e-3))) / 1e-3**2
        # the truncated ball (BALL_CUTOFF) is 7e-6 from the series limit; 1.7e-7 at the default
        assert exact == pytest.approx(small_q, rel=2e-5 if shape == "sphere" else 1e-6)
        if shape == "cylinder":
            assert exact == pytest.approx(-42.755, abs=1e-3)  # the value quoted in issue 12


def test_hessian_wrt_gradient_vector_at_zero_is_the_gpa_tensor():
    """Sphere: H = -2 c I at g = 0 (isotropic), every entry against central differences."""
    compartment = Compartment(sphere(RADIUS, max_eigenvalue=BALL_CUTOFF), DIFFUSIVITY)

    def value_of(vector):  # pgse_pieces normalises the direction: build the pieces by hand
        gradients = torch.stack([vector, torch.zeros_like(vector), -vector])[None]
        durations = torch.tensor([DELTA, BIG_DELTA - DELTA, DELTA], dtype=F64)
        return signal(compartment, GradientPieces(durations, gradients)).real[0]

    zero = torch.zeros(3, dtype=F64, requires_grad=True)
    exact = torch.autograd.functional.hessian(value_of, zero).numpy()
    small_q = (
        2.0 * float(np.log(gpa_pgse_sphere(1e-3, DELTA, BIG_DELTA, RADIUS, DIFFUSIVITY))) / 1e-6
    )
    np.testing.assert_allclose(exact, small_q * np.eye(3), rtol=0, atol=2e-5 * abs(small_q))
    for i, j in [(0, 0), (1, 1), (2, 2), (0, 1)]:
        unit = torch.zeros(3, dtype=F64)
        unit[i] += 1.0
        unit[j] += 1.0

        def along(h, unit=unit):
            return float(value_of(h * unit))

        # second derivative along e_i + e_j = H_ii + 2 H_ij + H_jj
        expected = exact[i, i] + 2 * exact[i, j] + exact[j, j] if i != j else 4 * exact[i, i]
        assert _second_difference(along, expected) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", ["cos", "sin"])
def test_ogse_hessian_at_zero_amplitude(kind):
    compartment = Compartment(cylinder(RADIUS, max_eigenvalue=DISK_CUTOFF), DIFFUSIVITY)
    waveform = OGSE(20 * ms, 25 * ms, 2, kind)

    def value(amplitude):  # 4 pieces per period: at g = 0 every piece is propagated
        acquisition = _acquisition(waveform, amplitude, (0.0, 1.0, 0.0))
        return signal(compartment, acquisition, time_step=2.5 * ms).real[0]

    exact = _hessian_at_zero(value)
    assert exact < 0
    assert exact == pytest.approx(_second_difference(lambda h: float(value(h)), exact), rel=1e-6)


def test_sampled_waveform_hessian_at_zero_real_and_imaginary():
    """A non-refocused waveform (complex signal): both parts, sphere and cylinder."""
    rng = np.random.default_rng(3)
    shape = torch.tensor(rng.normal(size=(6, 3)))
    durations = torch.full((6,), 4 * ms, dtype=F64)
    disk = cylinder(RADIUS, (1.0, 1.0, 1.0), max_eigenvalue=DISK_CUTOFF)
    for domain in (sphere(RADIUS, max_eigenvalue=BALL_CUTOFF), disk):
        compartment = Compartment(domain, DIFFUSIVITY)
        for part in (torch.real, torch.imag):

            def value(amplitude, part=part, compartment=compartment):
                gradients = (torch.as_tensor(amplitude, dtype=F64) * shape)[None]
                return part(signal(compartment, GradientPieces(durations, gradients))[0])

            exact = _hessian_at_zero(value)
            finite = _second_difference(lambda h: float(value(h)), exact)
            assert exact == pytest.approx(finite, rel=1e-6, abs=1e-9 * abs(exact) + 1e-12)
            if part is torch.real:
                assert exact < 0


def test_mesh_basis_hessian_at_zero_with_a_nonzero_row():
    """Mesh disk (degenerate pairs, stiffness coupling); the b = 0 row shares the batch with
    a weighted row, so the piece plan is shared: d2E/dG2 per row against differences."""
    nodes, elements = symmetric_disk()
    basis = differentiable_mesh_eigenbasis(nodes * RADIUS, elements, num_modes=14)
    domain = ProductDomain((basis,), free_axes=torch.tensor([[0.0, 0.0, 1.0]]))
    compartment = Compartment(domain, DIFFUSIVITY)
    direction = (0.6, 0.8, 0.0)
    for base in ([0.0, 0.05], [0.0, 0.0]):

        def value(amplitude, base=base):
            amplitudes = torch.as_tensor(base, dtype=F64) + torch.stack(
                [torch.as_tensor(amplitude, dtype=F64), torch.zeros((), dtype=F64)]
            )
            return signal(compartment, pgse_pieces(DELTA, BIG_DELTA, amplitudes, direction)).real[0]

        exact = _hessian_at_zero(value)
        assert exact < 0
        assert exact == pytest.approx(
            _second_difference(lambda h: float(value(h)), exact), rel=1e-6
        )


def test_values_without_derivatives_keep_the_zero_gradient_shortcut():
    durations = torch.tensor([DELTA, BIG_DELTA - DELTA, DELTA], dtype=F64)
    zero = torch.zeros(1, 3, 3, dtype=F64)
    assert [p.kind for p in plan_pieces(durations, zero)] == ["zero"] * 3
    differentiated = zero.clone().requires_grad_(True)
    assert [p.kind for p in plan_pieces(durations, differentiated)] == ["new"] * 3
    lobe = torch.tensor([[[0.05, 0, 0], [0, 0, 0], [-0.05, 0, 0]]], dtype=F64)
    assert [p.kind for p in plan_pieces(durations, lobe)] == ["new", "zero", "conj"]
    lobe.requires_grad_(True)
    assert [p.kind for p in plan_pieces(durations, lobe)] == ["new", "new", "conj"]


@pytest.mark.slow
def test_fourth_derivative_at_zero_matches_differences_of_the_hessian():
    """Order HIDDEN_ORDER = 4 is exact too: d4E/dG4 at 0 by nested autograd against
    Richardson central differences of d2E/dG2 at +-h (where the direction is in value)."""
    compartment = Compartment(cylinder(RADIUS, max_eigenvalue=DISK_CUTOFF), DIFFUSIVITY)

    def value(amplitude):
        return signal(compartment, pgse_pieces(DELTA, BIG_DELTA, amplitude.reshape(1))).real[0]

    def second(amplitude):
        first = torch.autograd.grad(value(amplitude), amplitude, create_graph=True)[0]
        return torch.autograd.grad(first, amplitude, create_graph=True)[0]

    zero = torch.zeros((), dtype=F64, requires_grad=True)
    curvature = second(zero)
    third = torch.autograd.grad(curvature, zero, create_graph=True)[0]
    fourth = float(torch.autograd.grad(third, zero)[0])
    assert abs(float(third)) < 1e-9 * abs(fourth)

    def hessian_at(h):
        return float(second(torch.tensor(h, dtype=F64, requires_grad=True)).detach())

    finite = _second_difference(hessian_at, fourth / float(curvature.detach()))
    assert fourth == pytest.approx(finite, rel=1e-6)
