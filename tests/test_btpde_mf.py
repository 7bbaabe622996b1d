"""Matrix formalism against the BTPDE reference on the same finite-element system (issue 6
acceptance): capped cylinder (gradients perpendicular and oblique to its axis), sphere and
a neuron-like cell (soma and two neurites), PGSE up to b = 10,000 s/mm^2 and cos-OGSE up
to b = 3,000 s/mm^2.

The MF truncated at lambda_c = (2 pi / ell)^2 converges to the BTPDE as ell decreases and
agrees with it to <= 1e-4 absolute once ell <= 1.5 um (about 100-250 modes on these small
meshes).  The BTPDE reference itself is checked by step doubling: its Gauss-Legendre
(order 4) error is estimated as |E(2h) - E(h)| / 15 (Richardson) and must be < 1e-6.
"""

import numpy as np
import pytest
from btpde_helpers import (
    REFERENCE_STEPS,
    D,
    acceptance_pieces,
    btpde_reference,
    cutoff,
    full_basis,
    mesh_operator,
    mf_signal,
    volume_mesh,
)

from mf_dmri import units
from mf_dmri.fem import mesh_eigenbasis
from mf_dmri.signal import Compartment, signal
from mf_dmri.signal.btpde import btpde_signal

MESHES = ["sphere", "cylinder", "neuron"]
KINDS = ["pgse", "ogse"]
LENGTH_SCALES = np.array([4.0, 3.0, 2.0, 1.5]) * units.um


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", MESHES)
def test_mf_converges_to_btpde_in_the_cutoff(name, kind):
    pieces = acceptance_pieces(kind)
    reference = btpde_reference(name, kind)
    coarse = btpde_signal(
        mesh_operator(name), pieces, time_step=2 * REFERENCE_STEPS[kind], scheme="gauss-legendre"
    ).numpy()
    assert np.abs(coarse - reference).max() / 15 < 1e-6  # the reference's own time error
    errors = np.array(
        [np.abs(mf_signal(name, pieces, cutoff(ell)) - reference).max() for ell in LENGTH_SCALES]
    )
    assert errors[-1] <= 1e-4, errors  # acceptance: |MF - BTPDE| <= 1e-4 at ell = 1.5 um
    assert errors[-1] < errors[0] / 10, errors  # convergence in the cutoff
    assert np.all(errors[1:] <= errors[:-1] * 1.5), errors  # no growth as modes are added
    assert (
        full_basis(name).truncated(cutoff(LENGTH_SCALES[-1])).num_modes
        < mesh_operator(name).num_dofs
    )  # the agreement is reached with a truncated basis


def test_untruncated_mf_equals_btpde_on_the_sphere():
    """With every mode the MF is the exact solution of the semi-discrete system, so the
    remaining difference is the BTPDE time error alone (order 4, Richardson < 1e-6)."""
    for kind in KINDS:
        basis = full_basis("sphere")
        assert basis.num_modes == mesh_operator("sphere").num_dofs
        full = mf_signal("sphere", acceptance_pieces(kind), 1e20)
        assert np.abs(full - btpde_reference("sphere", kind)).max() < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", MESHES)
def test_mf_matches_btpde_on_finer_meshes(name):
    """Finer meshes (~400-1250 nodes), the production eigen-solver (sparse shift-invert up
    to the cutoff ell = 1.5 um, not every mode): |MF - BTPDE| <= 1e-4 for PGSE and OGSE."""
    nodes, elements = volume_mesh(name, fine=True)
    operator = mesh_operator(name, fine=True)
    basis = mesh_eigenbasis(nodes, elements, length_scale=1.5 * units.um, order=1)
    assert basis.num_modes < operator.num_dofs / 2
    for kind in KINDS:
        pieces = acceptance_pieces(kind)
        mf = signal(Compartment(basis, D), pieces).numpy()
        step = REFERENCE_STEPS[kind]
        btpde = btpde_signal(operator, pieces, time_step=step, scheme="gauss-legendre")
        assert np.abs(mf - btpde.numpy()).max() <= 1e-4, kind
