"""The signal path on a CUDA device gives the CPU's signals and gradients (issue: same
results on CPU and CUDA).  Mesh bases, every propagator and the one chosen by measured cost,
every waveform kind, the error bar, and gradients with respect to mesh vertices and
diffusivity through the exponential actions.  Run on a machine with a GPU:
``pytest -m gpu tests/test_gpu.py``; without one these tests are skipped."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from permeable_helpers import square_in_square
from propagator_cases import WAVEFORMS, box_nodes, generic_fem_basis

import mf_dmri as mf
from mf_dmri.fem import PermeableParameters, permeable_eigenbasis, permeable_mesh
from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
from mf_dmri.sequences import PGSE, Acquisition, multi_shell
from mf_dmri.signal import (
    DenseExponential,
    KrylovExponential,
    ShiftInvertExponential,
    signal_with_error,
)
from mf_dmri.signal.propagation import factor_signal
from mf_dmri.units import ms, s_per_mm2, um

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]

D = 2e-9
#: CPU and GPU differ by the order of floating-point sums only (measured: ~1e-13).
SIGNAL_ATOL = 1e-11
GRADIENT_RTOL = 1e-9

PROPAGATORS = {
    "dense": DenseExponential,
    "krylov": KrylovExponential,
    "shift_invert": ShiftInvertExponential,
    "chosen": lambda: None,
}


@pytest.fixture(scope="module")
def basis():
    return generic_fem_basis()


@pytest.mark.parametrize("waveform", sorted(WAVEFORMS))
@pytest.mark.parametrize("propagator", sorted(PROPAGATORS))
def test_mesh_signal_on_cuda_equals_cpu(basis, waveform, propagator):
    pieces = WAVEFORMS[waveform]().pieces()
    values = {}
    for device in ("cpu", "cuda"):
        values[device] = factor_signal(
            basis.to(device),
            torch.tensor(D, dtype=torch.float64, device=device),
            pieces,
            propagator=PROPAGATORS[propagator](),
        )
    assert values["cuda"].device.type == "cuda"
    difference = (values["cuda"].cpu() - values["cpu"]).abs().max()
    assert float(difference) < SIGNAL_ATOL
    assert float(values["cpu"].abs().min()) > 1e-3  # a signal that carries information


@pytest.mark.parametrize("propagator", ["krylov", "chosen", "dense"])
def test_vertex_and_diffusivity_gradients_on_cuda_equal_cpu(propagator):
    """d/d(nodes) and d/dD of a loss of PGSE signals: the basis is built on the CPU (the
    FEM eigen-solve), moved to the GPU, and the propagation runs there."""
    nodes0, elements = box_nodes(5)
    acquisition = WAVEFORMS["pgse"]()
    gradients = {}
    for device in ("cpu", "cuda"):
        nodes = nodes0.clone().requires_grad_(True)
        diffusivity = torch.tensor(D, dtype=torch.float64, requires_grad=True)
        basis = differentiable_mesh_eigenbasis(nodes, elements, max_eigenvalue=1.2e13)
        values = factor_signal(
            basis.to(device),
            diffusivity.to(device),
            acquisition.pieces(),
            propagator=PROPAGATORS[propagator](),
        )
        loss = (values.real**2).sum()
        gradients[device] = torch.autograd.grad(loss, (nodes, diffusivity))
    for cpu, cuda in zip(gradients["cpu"], gradients["cuda"]):
        assert cuda.device.type == "cpu" and bool(torch.isfinite(cpu).all())
        scale = float(cpu.abs().max())
        assert scale > 0
        assert float((cuda - cpu).abs().max()) < GRADIENT_RTOL * scale


def test_signal_with_error_on_cuda_equals_cpu(basis):
    """The error-bar path (cutoff ladder, P1 against P2 discretisation bound) on a mesh
    compartment placed on the GPU."""
    acquisition = multi_shell(PGSE(10 * ms, 30 * ms), [0.0, 1000 * s_per_mm2], 3)
    results = {
        device: signal_with_error(mf.Compartment(basis.to(device), D), acquisition)
        for device in ("cpu", "cuda")
    }
    cpu, cuda = results["cpu"], results["cuda"]
    assert cuda.signal.device.type == "cuda"
    assert float((cuda.signal.cpu() - cpu.signal).abs().max()) < SIGNAL_ATOL
    _assert_same_bars(cpu, cuda)
    assert cuda.within_tolerance == cpu.within_tolerance


def _assert_same_bars(cpu, cuda) -> None:
    """Truncation and discretisation bars equal, down to round-off: at b = 0 the truncation
    bar is a difference of two signals equal to 1e-13 (1.3e-13 on the H200, 2.5e-13 on
    the CPU: measured), so bars under 1e-12 only need to stay that small.  The propagation
    bar is the tolerance of the propagator each device chose (on the H200 the dense
    exponential, 1e-11, where the CPU took the Krylov steps, 1e-10: measured), so only its
    size is checked."""
    for name in ("truncation_error", "discretisation_error"):
        np.testing.assert_allclose(
            getattr(cuda, name).cpu().numpy(), getattr(cpu, name).numpy(), rtol=1e-6, atol=1e-12
        )
    for result in (cpu, cuda):
        assert float(result.propagation_error.max()) <= 1e-9
    assert cuda.error_bar.device.type == "cuda"


def _square_in_square_parameters(permeability, diffusivity) -> PermeableParameters:
    return PermeableParameters(
        diffusivity=diffusivity,
        permeability=permeability,
        t2=(70 * ms, 40 * ms),
        spin_density=(1.0, 0.7),
    )


def test_coupled_signal_error_bar_and_gradients_on_cuda_equal_cpu():
    """A permeable square cell in extracellular space (coupled basis): the signal, its
    error bar, and d/d(permeability, diffusivities) of a loss, the basis built on the CPU
    and the propagation on the GPU."""
    nodes, elements, labels = square_in_square(10 * um, 4 * um, 10, crossed=False)
    mesh = permeable_mesh(nodes, elements, element_labels=labels)
    angles = np.linspace(0.0, np.pi, 3, endpoint=False)  # in the plane of the 2-D mesh
    directions = np.stack([np.cos(angles), np.sin(angles), 0 * angles], axis=1)
    acquisition = Acquisition.from_bvalues(
        PGSE(5 * ms, 15 * ms),
        np.repeat([0.0, 1000 * s_per_mm2, 3000 * s_per_mm2], 3),
        np.tile(directions, (3, 1)),
    )
    results = {}
    for device in ("cpu", "cuda"):
        permeability = torch.tensor(2e-5, dtype=torch.float64, requires_grad=True)
        outer = torch.tensor(2e-9, dtype=torch.float64, requires_grad=True)
        inner = torch.tensor(1e-9, dtype=torch.float64, requires_grad=True)
        params = _square_in_square_parameters(permeability, (outer, inner))
        basis = permeable_eigenbasis(mesh, params, num_modes=40).to(device)
        values = mf.signal(basis, acquisition)
        gradients = torch.autograd.grad((values.real**2).sum(), (permeability, outer, inner))
        fixed = permeable_eigenbasis(
            mesh, _square_in_square_parameters(2e-5, (2e-9, 1e-9)), length_scale=2 * um
        )
        bar = signal_with_error(fixed.to(device), acquisition)
        results[device] = (values.detach(), gradients, bar)
    cpu, cuda = results["cpu"], results["cuda"]
    assert cuda[0].device.type == "cuda" and cuda[2].signal.device.type == "cuda"
    assert float((cuda[0].cpu() - cpu[0]).abs().max()) < SIGNAL_ATOL
    for one, other in zip(cpu[1], cuda[1]):
        assert float((other - one).abs().max()) < GRADIENT_RTOL * float(one.abs().max())
    assert float((cuda[2].signal.cpu() - cpu[2].signal).abs().max()) < SIGNAL_ATOL
    _assert_same_bars(cpu[2], cuda[2])
