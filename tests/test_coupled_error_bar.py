"""The error bar of a coupled (permeable) basis (mf_dmri/signal/coupled_error.py).

Reference: the same finite-element system with every mode of the mesh (the untruncated
semi-discrete signal), so |signal - reference| is the true truncation error.  Sphere in
sphere (radii 2 and 4 um, D = 2 and 1 um^2/ms, T2 and spin densities differing), PGSE to
b = 10,000 s/mm^2, permeabilities 0, 1e-5 and 1e-4 m/s, the basis built coarse (5 um,
below the a-priori cutoff: 20 modes, true error 1e-4) and fine (2 um).  A fixed pair of
the basis alone (half its rate against all of it) misses the inner ball's second dipole
mode (rate 8.8e3 1/s) at these coarse cutoffs and was measured 20x too small; the
rebuilt pair at the a-priori rate covers it.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.geometry import build_compartments, sphere, tetrahedralize
from mf_dmri.sequences import PGSE, Acquisition
from mf_dmri.signal import signal, signal_with_error
from mf_dmri.signal.coupled_error import apriori_rate
from mf_dmri.units import ms, s_per_mm2, um, um2_per_ms


@pytest.fixture(scope="module")
def mesh():
    surfaces = [sphere(4 * um, subdivisions=1), sphere(2 * um, subdivisions=1)]
    return permeable_mesh(tetrahedralize(build_compartments(surfaces), length_scale=1.5 * um))


def _parameters(kappa: float) -> PermeableParameters:
    return PermeableParameters(
        diffusivity=(2 * um2_per_ms, 1 * um2_per_ms),
        permeability=kappa,
        t2=(0.08, 0.05),
        spin_density=(1.0, 0.7),
    )


def _acquisition() -> Acquisition:
    bvalues = torch.tensor([0, 1000, 3000, 10000, 1000, 3000, 10000.0]) * s_per_mm2
    directions = torch.tensor([[1.0, 0, 0]] * 4 + [[0, 0.6, 0.8]] * 3)
    return Acquisition.from_bvalues(PGSE(10 * ms, 30 * ms), bvalues, directions)


@pytest.mark.parametrize("kappa", [0.0, 1e-5, 1e-4])
def test_bar_covers_the_error_against_every_mode(mesh, kappa):
    acq = _acquisition()
    parameters = _parameters(kappa)
    every = permeable_eigenbasis(mesh, parameters, num_modes=mesh.mass.shape[0] - 1)
    reference = signal(every, acq).numpy()
    for ell in (5 * um, 2 * um):
        basis = permeable_eigenbasis(mesh, parameters, length_scale=ell)
        result = signal_with_error(basis, acq)
        true = np.abs(result.signal.detach().numpy() - reference)
        bar = result.error_bar.numpy()
        assert (true <= bar).all(), (kappa, ell, true, bar)
        assert result.within_tolerance and result.tolerance == 1e-3
        assert result.max_eigenvalues[0] >= 2 * apriori_rate(basis, acq.pieces(), 1e-3) * 0.99
        if ell == 5 * um:  # the basis as built is far off: the check went beyond it
            assert np.abs(signal(basis, acq).numpy() - reference).max() > 1e-5
            assert result.num_modes[0] > basis.num_modes
        # the bar is a bound, not a wild one: below the tolerance and the coarse error
        assert bar.max() < 1e-5


def test_bar_with_an_explicit_tolerance_doubles_until_met(mesh):
    acq = _acquisition()
    basis = permeable_eigenbasis(mesh, _parameters(1e-5), length_scale=5 * um)
    loose = signal_with_error(basis, acq, tolerance=1e-2)
    tight = signal_with_error(basis, acq, tolerance=1e-7)
    assert tight.num_modes[0] > loose.num_modes[0]
    assert tight.max_error_bar < loose.max_error_bar


def test_fixed_coupled_basis_uses_its_own_halves(mesh):
    """Without a source the basis is fixed: the ladder (a quarter and half of its largest
    rate, every mode), the bar the larger of its two changes, the signal that of the basis
    itself."""
    acq = _acquisition()
    basis = replace(permeable_eigenbasis(mesh, _parameters(1e-5), length_scale=2 * um), source=None)
    result = signal_with_error(basis, acq)
    whole = signal(basis, acq).numpy()
    np.testing.assert_allclose(result.signal.numpy(), whole, atol=1e-14)
    half = signal(basis.truncated(0.5 * basis.max_rate), acq).numpy()
    quarter = signal(basis.truncated(0.25 * basis.max_rate), acq).numpy()
    np.testing.assert_allclose(
        result.truncation_error.numpy(),
        np.maximum(2 * np.abs(quarter - half), 2 * np.abs(half - whole)),
    )
    assert result.num_modes == (basis.num_modes,)
    tiny = basis.truncated(float(basis.rates[0]))  # one mode
    with pytest.raises(ValueError, match="too few modes"):
        signal_with_error(tiny, acq)
    with pytest.raises(ValueError, match="CoupledBasis is fixed"):
        signal_with_error(basis, acq, max_eigenvalue=1e12)


def test_coupled_bar_is_differentiable_in_the_signal(mesh):
    """The reported signal keeps its derivative w.r.t. the tissue values (the finer basis
    is rebuilt from the same parameter tensors)."""
    kappa = torch.tensor(1e-5, dtype=torch.float64, requires_grad=True)
    basis = permeable_eigenbasis(mesh, _parameters(kappa), length_scale=3 * um)
    result = signal_with_error(basis, _acquisition())
    (gradient,) = torch.autograd.grad(result.signal.real[3], kappa)
    assert torch.isfinite(gradient) and float(gradient) != 0.0
