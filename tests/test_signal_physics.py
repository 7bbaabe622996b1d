"""Physical limits of the matrix-formalism signal: Gaussian phase approximation at low b
(Neuman 1974; Murday and Cotts 1968), narrow-pulse limits (Balinov et al. 1993; Tanner and
Stejskal 1968; Callaghan 1995), free diffusion for large pores, rotation invariance."""

import numpy as np
import pytest
import torch
from helpers import pgse_amplitude, pgse_pieces
from scipy.spatial.transform import Rotation

from mf_dmri.analytic import cylinder, slab, sphere
from mf_dmri.analytic.gpa import (
    free_diffusion_signal,
    gpa_pgse_cylinder,
    gpa_pgse_slab,
    gpa_pgse_sphere,
    gpa_signal,
)
from mf_dmri.analytic.narrow_pulse import (
    narrow_pulse_cylinder,
    narrow_pulse_slab,
    narrow_pulse_sphere,
)
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal import Compartment, signal
from mf_dmri.units import GAMMA_PROTON, ms, s_per_mm2, um

R, D = 5 * um, 2e-9
SHAPES = {
    "slab": (
        lambda: slab(2 * R),
        lambda g, d, s: gpa_pgse_slab(g, d, s, 2 * R, D),
        lambda q, s: narrow_pulse_slab(q, s, 2 * R, D),
    ),
    "cylinder": (
        lambda: cylinder(R),
        lambda g, d, s: gpa_pgse_cylinder(g, d, s, R, D),
        lambda q, s: narrow_pulse_cylinder(q, s, R, D),
    ),
    "sphere": (
        lambda: sphere(R),
        lambda g, d, s: gpa_pgse_sphere(g, d, s, R, D),
        lambda q, s: narrow_pulse_sphere(q, s, R, D),
    ),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_eigen_gpa_equals_classical_closed_form(shape):
    domain, classical, _ = SHAPES[shape]
    g = pgse_amplitude(np.array([300.0, 3000.0, 9000.0]) * s_per_mm2, 10 * ms, 30 * ms)
    pieces = pgse_pieces(10 * ms, 30 * ms, g)
    eigen = gpa_signal(domain().factors[0], D, pieces).numpy()
    np.testing.assert_allclose(eigen, classical(g, 10 * ms, 30 * ms), rtol=2e-6)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_mf_minus_gpa_is_order_b_squared(shape):
    domain, classical, _ = SHAPES[shape]
    bvalues = np.array([50.0, 100.0, 200.0, 400.0]) * s_per_mm2
    g = pgse_amplitude(bvalues, 10 * ms, 50 * ms)
    mf = signal(
        Compartment(domain(), D), pgse_pieces(10 * ms, 50 * ms, g), tolerance=1e-10
    ).real.numpy()
    difference = np.abs(mf - classical(g, 10 * ms, 50 * ms))
    slope = np.polyfit(np.log(bvalues), np.log(difference), 1)[0]
    assert slope == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_narrow_pulse_limit_is_approached_linearly(shape):
    domain, _, narrow = SHAPES[shape]
    q, separation = np.array([1.0e5, 3.0e5, 6.0e5]), 20 * ms
    expected = narrow(q, separation)
    errors = []
    deltas = np.array([4e-4, 2e-4, 1e-4])
    for delta in deltas:
        pieces = pgse_pieces(delta, separation, q / (GAMMA_PROTON * delta))
        errors.append(
            np.abs(signal(Compartment(domain(), D), pieces).real.numpy() - expected).max()
        )
    slope = np.polyfit(np.log(deltas), np.log(errors), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.15)
    assert errors[-1] < 5e-3


def test_free_diffusion_recovered_for_wide_slabs():
    bvalue = 1000 * s_per_mm2
    g = pgse_amplitude(bvalue, 10 * ms, 30 * ms)
    pieces = pgse_pieces(10 * ms, 30 * ms, [g])
    free = float(free_diffusion_signal(pieces, D))
    assert free == pytest.approx(np.exp(-bvalue * D), rel=1e-12)
    widths = np.array([40.0, 80.0, 160.0, 320.0, 640.0]) * um
    errors = []
    for width in widths:
        q = GAMMA_PROTON * g * 10 * ms
        dom = slab(width, max_eigenvalue=(12 * q) ** 2 + (400 / width) ** 2)
        errors.append(abs(float(signal(Compartment(dom, D), pieces).real) - free))
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)  # surface-to-volume ratio ~ 1/width
    assert errors[-1] < 1e-2  # Mitra 1992: 1 - D(t)/D ~ (S/V) sqrt(D t)


def _random_pieces(generator, num_measurements=3, num_pieces=4):
    gradients = torch.tensor(generator.normal(size=(num_measurements, num_pieces, 3)) * 0.04)
    durations = torch.tensor(generator.uniform(2e-3, 8e-3, size=num_pieces))
    return GradientPieces(durations, gradients)


def _rotate_pieces(pieces, rotation):
    return GradientPieces(pieces.durations, pieces.gradients @ rotation.T)


@pytest.mark.parametrize(
    "domain",
    [
        lambda: cylinder(R, max_eigenvalue=150 / R**2),
        lambda: cylinder(R, length=12 * um, max_eigenvalue=150 / R**2),
        lambda: sphere(R, max_eigenvalue=80 / R**2),
        lambda: slab(2 * R, max_eigenvalue=500 / R**2),
    ],
)
def test_joint_rotation_invariance(domain):
    rng = np.random.default_rng(3)
    dom = domain()
    pgse = pgse_pieces(10 * ms, 30 * ms, [0.03, 0.08], direction=rng.normal(size=3))
    for pieces in (pgse, _random_pieces(rng)):
        base = signal(Compartment(dom, D), pieces)
        for seed in range(2):
            rot = torch.tensor(Rotation.random(random_state=seed).as_matrix())
            turned = signal(Compartment(dom.rotated(rot), D), _rotate_pieces(pieces, rot))
            torch.testing.assert_close(turned, base, rtol=0, atol=1e-11)


def test_compartment_without_relaxation_survives_dataclass_replace():
    """T2 = inf (no relaxation) is stored as an infinite tensor; replace() must accept it
    again, while NaN and -inf stay errors."""
    import dataclasses
    import math

    from mf_dmri.analytic import sphere
    from mf_dmri.signal.compartment import Compartment

    compartment = Compartment(sphere(5e-6), 2e-9)
    changed = dataclasses.replace(compartment, diffusivity=1e-9)
    assert bool(torch.isposinf(changed.t2)) and float(changed.diffusivity) == 1e-9
    for bad in (float("nan"), -math.inf):
        with pytest.raises(ValueError, match="t2"):
            Compartment(sphere(5e-6), 2e-9, t2=bad)
