"""The factor plan of the signal layer (``prepare_factor`` / ``evaluate_factor``):

* real-arithmetic propagation of reflection-symmetric factors (``mf_dmri.signal.parity``)
  against the complex propagation of the same plan, for the interval, disk and ball, for
  refocused and non-refocused waveforms, at the echo and along the time course;
* the parity check rejects matrices without the bipartite structure;
* a vector of diffusivities gives the rows of the scalar calls (also across chunks);
* measurements whose canonical waveforms differ by round-off share one propagation and
  agree with one ``signal()`` call per measurement.
"""

import dataclasses

import numpy as np
import pytest
import torch
from helpers import pgse_pieces

from mf_dmri.analytic import ball_basis, cylinder, disk_basis, interval_basis
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal import Compartment, free_signal, signal
from mf_dmri.signal.parity import bipartite_parity, real_moments, similarity
from mf_dmri.signal.propagation import evaluate_factor, factor_signal, prepare_factor

D = 2e-9
RADIUS = 4e-6
AXIAL = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
DIRECTIONS = np.array([[1.0, 0.0, 0.0], [0.3, 0.8, 0.5], [0.0, 0.6, 0.8]])


def _pieces(refocused=True):
    """Three directions x three amplitudes (the first 0: a zero waveform comes first, along
    the first axis): PGSE, or an unbalanced waveform (g, 0, g/2)."""
    amplitudes = np.repeat([0.0, 0.03, 0.07], 3)
    directions = np.tile(DIRECTIONS, (3, 1))
    pieces = pgse_pieces(6e-3, 18e-3, amplitudes, directions)
    if refocused:
        return pieces
    gradients = pieces.gradients.clone()
    gradients[:, 2] = 0.5 * gradients[:, 0]
    return GradientPieces(pieces.durations, gradients)


CUTOFF = 200 / RADIUS**2  # [1/m^2]: 10 interval, 59 disk, 243 ball modes
BASES = {
    "interval": lambda: interval_basis(2 * RADIUS, (0.0, 0.6, 0.8), max_eigenvalue=CUTOFF),
    "disk": lambda: disk_basis(RADIUS, (0.0, 0.0, 1.0), max_eigenvalue=CUTOFF),
    "disk_as_mesh": lambda: dataclasses.replace(
        disk_basis(RADIUS, max_eigenvalue=CUTOFF), isotropic=False
    ),
    "ball": lambda: ball_basis(RADIUS, max_eigenvalue=CUTOFF),
}


@pytest.mark.parametrize("name", sorted(BASES))
@pytest.mark.parametrize("refocused", [True, False])
def test_real_arithmetic_matches_complex_propagation(name, refocused):
    basis = BASES[name]()
    plan = prepare_factor(basis, _pieces(refocused))
    assert plan.parity is not None, "a reflection-symmetric factor must be detected"
    complex_plan = dataclasses.replace(plan, parity=None)
    for time_course in (False, True):
        real = evaluate_factor(plan, D, time_course=time_course)
        reference = evaluate_factor(complex_plan, D, time_course=time_course)
        torch.testing.assert_close(real, reference, rtol=1e-12, atol=1e-14)
    # a reflection-symmetric domain gives a real signal for any waveform: E(g) = E(-g) by
    # symmetry and E(-g) = conj(E(g)) since Lambda and Q are real
    echo = evaluate_factor(plan, D)
    assert float(echo.imag.abs().max()) == 0.0
    assert float(reference[..., -1].imag.abs().max()) < 1e-14


def test_parity_similarity_makes_the_phase_matrix_real():
    """S^-1 (i Q) S = J for a bipartite Q, with S = diag(1, i) on the two classes."""
    rng = np.random.default_rng(3)
    size = 9
    classes = rng.permutation(np.arange(size) % 2)
    block = rng.normal(size=(size, size))
    q = np.where(classes[:, None] != classes[None, :], block + block.T, 0.0)
    start = np.where(classes == classes[0], rng.normal(size=size), 0.0)
    parity = bipartite_parity(torch.tensor(q), torch.tensor(start))
    assert parity is not None
    assert ((parity > 0).numpy() == (classes == classes[0])).all()
    s = similarity(parity[None])[0]
    similar = torch.diag(1 / s) @ (1j * torch.tensor(q, dtype=torch.complex128)) @ torch.diag(s)
    j = real_moments(torch.tensor(q)[None, None], parity[None])[0, 0]
    torch.testing.assert_close(similar, j.to(torch.complex128), rtol=0, atol=1e-15)
    # no bipartite structure, or a start vector with a component in the odd class: None
    assert bipartite_parity(torch.tensor(block + block.T), torch.tensor(start)) is None
    assert bipartite_parity(torch.tensor(q), torch.ones(size, dtype=torch.float64)) is None


def test_parity_not_used_when_moments_need_gradients():
    radius = torch.tensor(RADIUS, dtype=torch.float64, requires_grad=True)
    plan = prepare_factor(disk_basis(radius), _pieces())
    assert plan.parity is None


def test_diffusivity_gradient_through_the_real_path():
    basis = BASES["ball"]()
    plan = prepare_factor(basis, _pieces())
    grads = []
    for candidate in (plan, dataclasses.replace(plan, parity=None)):
        d = torch.tensor(D, dtype=torch.float64, requires_grad=True)
        grads.append(torch.autograd.grad(evaluate_factor(candidate, d).real.sum(), d)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-11, atol=0)


@pytest.mark.parametrize("name", ["disk", "disk_as_mesh"])
def test_vector_of_diffusivities_matches_scalar_calls(name):
    basis = BASES[name]()
    pieces = _pieces()
    values = torch.tensor([0.5e-9, 1.7e-9, 3e-9], dtype=torch.float64)
    scalar = torch.stack([factor_signal(basis, v, pieces) for v in values])
    torch.testing.assert_close(factor_signal(basis, values, pieces), scalar, rtol=1e-14, atol=0)
    # a budget of one matrix per batch: the chunks cut across diffusivities
    tiny = factor_signal(basis, values, pieces, max_chunk_bytes=1, time_course=True)
    assert tiny.shape == (3, pieces.num_measurements, pieces.num_pieces)
    torch.testing.assert_close(tiny[..., -1], scalar, rtol=1e-14, atol=0)
    free = free_signal(values, AXIAL, pieces)
    expected = torch.stack([free_signal(v, AXIAL, pieces) for v in values])
    torch.testing.assert_close(free, expected, rtol=1e-15, atol=0)


def test_round_off_distinct_shells_share_one_propagation():
    """Directions (cos a, sin a, 0.3) have the same in-plane projection up to round-off:
    each shell is one canonical waveform, and the result is that of one signal() call per
    measurement."""
    angles = np.linspace(0, np.pi, 7, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles), 0.3 * np.ones(7)], axis=1)
    amplitudes = np.repeat([0.02, 0.05, 0.09], 7)
    pieces = pgse_pieces(8e-3, 25e-3, amplitudes, np.tile(directions, (3, 1)))
    domain = cylinder(RADIUS)
    plan = prepare_factor(domain.factors[0], pieces)
    assert plan.local.shape[0] == 3
    batched = signal(Compartment(domain, D), pieces)
    singles = [
        signal(
            Compartment(domain, D), GradientPieces(pieces.durations, pieces.gradients[m : m + 1])
        )
        for m in range(pieces.num_measurements)
    ]
    torch.testing.assert_close(batched, torch.cat(singles), rtol=1e-13, atol=1e-15)
