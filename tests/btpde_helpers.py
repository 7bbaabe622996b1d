"""Helpers of the BTPDE tests: small meshes (cached), a generic coupled operator, a dense
matrix-exponential reference of the semi-discrete system, and the matrix-formalism signal
of a mesh at several cutoffs."""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import skfem
import torch

from mf_dmri import units
from mf_dmri.fem import ShiftInvertLanczos, assemble_mesh, mesh_eigenbasis
from mf_dmri.fem.bloch_torrey import BlochTorreyOperator, impermeable_operator
from mf_dmri.geometry import generators, tetrahedralize
from mf_dmri.geometry.neuron import NeuronSkeleton, neuron_surface
from mf_dmri.sequences import OGSE, PGSE, Acquisition
from mf_dmri.signal import Compartment, signal

D = 2e-9  # [m^2/s]
um, ms = units.um, units.ms


def dense_reference(operator: BlochTorreyOperator, pieces) -> np.ndarray:
    """Echo signal r^T M m(TE) / r^T M m0 by dense matrix exponentials of each piece.

    With M = L L^T and y = L^T m the system is dy/dt = -L^-1 B L^-T y, a complex-symmetric
    matrix (better conditioned for scipy.linalg.expm than M^-1 B)."""
    mass = operator.mass.toarray()
    decay = operator.decay.toarray()
    moments = [q.toarray() for q in operator.moments]
    lower = np.linalg.cholesky(mass)
    durations = pieces.durations.numpy()
    local = pieces.gradients.numpy() @ operator.axes.T
    out = []
    for m in range(local.shape[0]):
        y = lower.T @ operator.initial.astype(complex)
        for p, tau in enumerate(durations):
            generator = decay + 1j * pieces.gyromagnetic_ratio * sum(
                g * q for g, q in zip(local[m, p], moments, strict=True)
            )
            reduced = sla.solve_triangular(lower, generator, lower=True)
            reduced = sla.solve_triangular(lower, reduced.T, lower=True).T
            y = sla.expm(-tau * reduced) @ y
        out.append((operator.readout @ lower) @ y / operator.initial_signal())
    return np.array(out)


def coupled_operator() -> BlochTorreyOperator:
    """A generic two-compartment operator: a box and a ball (structured scikit-fem meshes),
    different diffusivities and T2, spin densities 1 and 0.5, and a symmetric
    mass-conserving exchange between a few node pairs (stands in for permeation)."""
    box = skfem.MeshTet.init_tensor(*(np.linspace(0, s, k) for s, k in ((6, 5), (4, 4), (3, 3))))
    ball = skfem.MeshTet.init_ball(1)
    box_nodes, ball_nodes = box.p.T * um, ball.p.T * 2.5 * um + np.array([10, 0, 0]) * um
    pieces = [
        assemble_mesh(box_nodes, box.t.T, order=1).pieces[0],
        assemble_mesh(ball_nodes, ball.t.T, order=1).pieces[0],
    ]
    operator = impermeable_operator(pieces, [2e-9, 1e-9], t2=[0.08, 0.05], spin_density=[1.0, 0.5])
    n_box = pieces[0].num_dofs
    pairs = [(0, n_box), (7, n_box + 3), (20, n_box + 10)]
    rows, cols, vals = [], [], []
    for i, j in pairs:
        rows += [i, j, i, j]
        cols += [i, j, j, i]
        vals += [1.0, 1.0, -1.0, -1.0]
    exchange = sp.csr_matrix((np.array(vals) * 2e-20, (rows, cols)), shape=operator.mass.shape)
    return BlochTorreyOperator(
        mass=operator.mass,
        decay=(operator.decay + exchange).tocsr(),
        moments=operator.moments,
        initial=operator.initial,
        readout=operator.readout,
        axes=operator.axes,
        compartment=operator.compartment,
        mesh_size=operator.mesh_size,
    )


@functools.cache
def volume_mesh(name: str, fine: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Small tetrahedral meshes (nodes [m], elements): 'sphere' (R = 5 um, 180 nodes),
    'cylinder' (R = 3 um, length 15 um along z, ~150 nodes) and 'neuron' (soma R = 4 um
    with two neurites of radius 1 um, ~880 nodes), all by netgen; ``fine``: finer surfaces
    (about 1000, 1400 and 1250 nodes)."""
    if name == "sphere":
        surface = generators.sphere(5 * um, subdivisions=3 if fine else 2)
    elif name == "cylinder":
        surface = generators.cylinder(3 * um, 15 * um, segments=16 if fine else 12)
    elif name == "neuron":
        skeleton = NeuronSkeleton(
            4 * um,
            starts=[[3 * um, 0, 0], [-1.5 * um, 2.5 * um, 0]],
            ends=[[16 * um, 0.5 * um, 0.3 * um], [-8 * um, 12 * um, 1 * um]],
            radii=[1 * um, 1 * um],
        )
        surface = neuron_surface(skeleton, segments=10 if fine else 8)
    else:
        raise ValueError(name)
    edge = 1.0 * um if fine and name == "cylinder" else None  # its surface has few nodes
    mesh = tetrahedralize(surface, length_scale=edge, thin_part_cells=None)
    return mesh.nodes, mesh.elements


@functools.cache
def mesh_operator(name: str, fine: bool = False) -> BlochTorreyOperator:
    nodes, elements = volume_mesh(name, fine)
    return impermeable_operator(list(assemble_mesh(nodes, elements, order=1).pieces), D)


@functools.cache
def full_basis(name: str):
    """Every eigenmode of the mesh below 1e15 1/m^2 (dense solve): all of them on the
    sphere and cylinder (the MF without truncation); on the neuron, whose sliver elements
    have larger eigenvalues, every mode of wavelength >= 0.2 um."""
    nodes, elements = volume_mesh(name)
    return mesh_eigenbasis(
        nodes, elements, max_eigenvalue=1e15, solver=ShiftInvertLanczos(dense_limit=10**6), order=1
    )


def mf_signal(name: str, pieces, max_eigenvalue: float) -> np.ndarray:
    """MF signal of mesh ``name`` truncated at ``max_eigenvalue`` [1/m^2]."""
    basis = full_basis(name).truncated(max_eigenvalue)
    return signal(Compartment(basis, D), pieces).numpy()


def protocol(kind: str, bvalues, directions):
    """GradientPieces of a PGSE (delta/Delta = 10/30 ms) or cos-OGSE (delta/Delta = 10/20
    ms, 2 periods, 16 pieces per period) acquisition; bvalues [s/m^2], (M,) and
    directions (M, 3)."""
    if kind == "pgse":
        waveform, step = PGSE(10 * ms, 30 * ms), None
    else:
        waveform, step = OGSE(10 * ms, 20 * ms, 2, "cos"), 5 * ms / 16
    directions = torch.as_tensor(np.asarray(directions, dtype=float))
    directions = directions / torch.linalg.vector_norm(directions, dim=-1, keepdim=True)
    acquisition = Acquisition.from_bvalues(waveform, torch.as_tensor(bvalues), directions)
    return acquisition.pieces(step)


#: b-values [s/mm^2] and directions of the MF-vs-BTPDE protocols: for the cylinder (axis z)
#: (1, 0, 0) is perpendicular and (1, 0, 1) oblique.
PROTOCOLS = {
    "pgse": ([1000, 3000, 10000, 3000, 10000], [(1, 0, 0)] * 3 + [(1, 0, 1), (0.3, 1, 0.2)]),
    "ogse": ([1000, 3000, 3000], [(1, 0, 0), (1, 0, 0), (1, 0, 1)]),
}
#: Gauss-Legendre steps [s] of the BTPDE reference (time error < 1e-6, see the tests).
REFERENCE_STEPS = {"pgse": 2.5e-4, "ogse": 5e-5}


def acceptance_pieces(kind: str):
    bvalues, directions = PROTOCOLS[kind]
    return protocol(kind, np.array(bvalues) * units.s_per_mm2, directions)


@functools.cache
def btpde_reference(name: str, kind: str) -> np.ndarray:
    """BTPDE (Gauss-Legendre, order 4) signal of mesh ``name`` under protocol ``kind``."""
    from mf_dmri.signal.btpde import btpde_signal

    step = REFERENCE_STEPS[kind]
    pieces = acceptance_pieces(kind)
    return btpde_signal(
        mesh_operator(name), pieces, time_step=step, scheme="gauss-legendre"
    ).numpy()


def cutoff(length_scale: float) -> float:
    """lambda_c = (2 pi / length_scale)^2 [1/m^2] for a length scale [m]."""
    return (2 * np.pi / length_scale) ** 2
