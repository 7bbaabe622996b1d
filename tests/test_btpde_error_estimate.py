"""The MF truncation-error estimate of ``signal_with_error`` with a fixed cutoff pair
(``max_eigenvalue``, ``reference_max_eigenvalue``) against the true error, measured against
the BTPDE reference on the same mesh, and the BTPDE check on a subset
(mf_dmri.signal.btpde_check).

Measured on the sphere, cylinder and neuron meshes of tests/btpde_helpers.py (PGSE and
OGSE, cutoffs ell = 5, 4, 3, 2, 1.5 um), per measurement with a true error above 3e-6:
* reference cutoff 4 lambda_c (length scale halved): |E(lambda_c) - E(4 lambda_c)| / true
  error of E(lambda_c) in [0.74, 1.31];
* reference cutoff 2 lambda_c: in [0.05, 6.3] per measurement (a measurement whose error
  nearly cancels between the two cutoffs), but the largest estimate over the measurements
  is within [0.34, 1.0] of the largest true error.
The tests assert [0.5, 2] and [1/4, 2] respectively (the change is the bar divided by
ESTIMATE_SAFETY), and with k = 4 that the bar covers the error of the reported (finer)
signal.
"""

import numpy as np
import pytest
import torch
from btpde_helpers import (
    D,
    acceptance_pieces,
    btpde_reference,
    cutoff,
    full_basis,
    mesh_operator,
    mf_signal,
)

from mf_dmri import units
from mf_dmri.signal import Compartment, signal_with_error
from mf_dmri.signal.btpde_check import compare_with_btpde
from mf_dmri.signal.error_estimate import ESTIMATE_SAFETY

LENGTH_SCALES = np.array([4.0, 3.0]) * units.um
FLOOR = 3e-6  # below this the true error is not resolved (BTPDE error ~ 1e-7)


@pytest.mark.parametrize("kind", ["pgse", "ogse"])
@pytest.mark.parametrize("name", ["sphere", "cylinder", "neuron"])
def test_error_estimate_tracks_the_true_error(name, kind):
    pieces = acceptance_pieces(kind)
    reference = btpde_reference(name, kind)
    compartment = Compartment(full_basis(name), D)
    checked = 0
    for ell in LENGTH_SCALES:
        lam = cutoff(ell)
        coarse = mf_signal(name, pieces, lam)
        for factor, per_measurement, worst in ((4.0, (0.5, 2.0), None), (2.0, None, (0.25, 2))):
            result = signal_with_error(
                compartment, pieces, max_eigenvalue=lam, reference_max_eigenvalue=factor * lam
            )
            np.testing.assert_allclose(result.signal.numpy(), mf_signal(name, pieces, factor * lam))
            true = np.abs(coarse - reference)
            estimate = result.truncation_error.numpy() / ESTIMATE_SAFETY
            np.testing.assert_allclose(estimate, np.abs(coarse - result.signal.numpy()))
            if factor == 4.0:  # the bar covers the reported (finer) signal, up to the
                # BTPDE's own error; with k = 2 it need not on meshes (docs/btpde.md)
                fine_error = np.abs(result.signal.numpy() - reference)
                assert (fine_error <= result.error_bar.numpy() + 1e-6).all()
            resolved = true > FLOOR
            if per_measurement and resolved.any():
                ratio = estimate[resolved] / true[resolved]
                assert per_measurement[0] <= ratio.min() and ratio.max() <= per_measurement[1]
                checked += 1
            if worst and true.max() > FLOOR:
                ratio = estimate.max() / true.max()
                assert worst[0] <= ratio <= worst[1], (ell, factor, ratio)
    assert checked >= 2  # the estimate was compared where the error is resolved


def test_fixed_cutoff_bookkeeping_and_errors():
    basis = full_basis("sphere")
    pieces = acceptance_pieces("pgse")
    lam = cutoff(3 * units.um)
    result = signal_with_error(Compartment(basis, D, t2=0.07), pieces, max_eigenvalue=lam)
    assert result.num_modes == (basis.truncated(2 * lam).num_modes,)  # default reference 2 lam
    assert result.max_eigenvalues[0] <= 2 * lam < float(basis.eigenvalues[-1])
    whole = signal_with_error(
        Compartment(basis, D), pieces, max_eigenvalue=lam, reference_max_eigenvalue=1e20
    )
    assert whole.num_modes == (basis.num_modes,)  # a fixed basis holding less: used whole
    assert whole.max_eigenvalues[0] == pytest.approx(float(basis.eigenvalues[-1]))
    with pytest.raises(ValueError, match="larger than max_eigenvalue"):
        signal_with_error(
            Compartment(basis, D), pieces, max_eigenvalue=lam, reference_max_eigenvalue=lam
        )
    with pytest.raises(ValueError, match="needs max_eigenvalue"):
        signal_with_error(Compartment(basis, D), pieces, reference_max_eigenvalue=lam)
    with pytest.raises(ValueError, match="no mode between"):
        signal_with_error(Compartment(basis, D), pieces, max_eigenvalue=1e20)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="max_eigenvalue"):
            signal_with_error(Compartment(basis, D), pieces, max_eigenvalue=bad)


def test_btpde_check_on_a_subset():
    """On the sphere the untruncated MF is the exact semi-discrete solution, so it gives the
    true BTPDE time error and the true MF truncation error."""
    pieces = acceptance_pieces("pgse")
    operator = mesh_operator("sphere")
    mf = torch.as_tensor(mf_signal("sphere", pieces, cutoff(3 * units.um)))
    exact = mf_signal("sphere", pieces, 1e20)[[2, 4]]
    truncation = np.abs(mf.numpy()[[2, 4]] - exact)
    # Crank-Nicolson at 1 ms: the Richardson estimate tracks the true time error, which
    # exceeds the truncation error, so the check reports itself inconclusive
    rough = compare_with_btpde(
        operator, pieces, mf, time_step=1e-3, measurements=[2, 4], scheme="crank-nicolson"
    )
    time_error = np.abs(rough.btpde_signal.numpy() - exact)
    ratio = rough.btpde_error_estimate.numpy() / time_error
    assert np.all((0.7 < ratio) & (ratio < 1.4)), ratio
    np.testing.assert_allclose(
        rough.difference.numpy(), np.abs(mf.numpy()[[2, 4]] - rough.btpde_signal.numpy())
    )
    assert time_error.max() > truncation.max() and not rough.conclusive
    # Gauss-Legendre at 0.5 ms: conclusive, and the difference is the truncation error
    check = compare_with_btpde(operator, pieces, mf, time_step=5e-4, measurements=[2, 4])
    assert check.conclusive and check.btpde.scheme == "gauss-legendre"
    np.testing.assert_allclose(check.difference.numpy(), truncation, rtol=0.02)
    with pytest.raises(ValueError, match="measurements"):
        compare_with_btpde(operator, pieces, mf, time_step=1e-3, measurements=[9])
    with pytest.raises(ValueError, match="mf_signal"):
        compare_with_btpde(operator, pieces, mf[:2], time_step=1e-3)
