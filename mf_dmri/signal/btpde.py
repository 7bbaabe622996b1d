"""The BTPDE reference solver: the semi-discrete Bloch-Torrey system integrated in time.

For a :class:`~mf_dmri.fem.bloch_torrey.BlochTorreyOperator` (mass M, decay A, first
moments J_k, initial magnetisation m0, readout r) and piecewise-constant gradients g_p
(:class:`~mf_dmri.sequences.pieces.GradientPieces`), it integrates

    M dm/dt = -(A + i gamma g_p . J) m = -B_p m,   m(0) = m0,   signal = r^T M m(TE),

on every piece with equal steps no longer than ``time_step`` (steps never straddle a piece
boundary, so each piece is an autonomous linear problem and the scheme keeps its full
order).  No eigen-truncation is involved: this is the exact solution of the same
finite-element system that the matrix formalism projects on its eigenmodes, up to the
time-stepping error O(time_step^p) (see :mod:`mf_dmri.signal.rational_schemes`).

Cost: one sparse LU (``scipy.sparse.linalg.splu``) of ``z_j M + h B_p`` per pole z_j of the
scheme and distinct (step h, local gradient g_p); measurements that share a gradient on a
piece are stepped together as one block of right-hand sides, all zero-gradient pieces of
one step share their factorisations, and a piece with gradient -g (the refocused lobe)
reuses the factorisation of +g by complex conjugation (M, A, J are real).

The solver runs in numpy/scipy on the CPU and is not differentiable (no autograd); it is a
reference and a check for the matrix formalism, see docs/btpde.md.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import splu

from mf_dmri._checks import CDTYPE
from mf_dmri.fem.bloch_torrey import BlochTorreyOperator
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.signal.api import as_pieces
from mf_dmri.signal.rational_schemes import RationalScheme, get_scheme


@dataclass(frozen=True)
class BtpdeResult:
    """Signal of the BTPDE solver with its diagnostics.

    Args:
        signal: complex128 (M,) echo signal, normalised by r^T M m0 (dimensionless) or in
            [m^d] (``normalize=False``).
        scheme: name of the time-stepping scheme.
        order: its order of convergence p [-] (error O(time_step^p)).
        time_step: the largest step requested [s].
        num_steps: time steps from 0 to the echo (the same for every measurement) [-].
        num_factorizations: sparse LU factorisations computed [-].
        num_solves: block triangular solves (one per pole and step and gradient group) [-].
        factorization_time: wall time spent factorising [s].
        wall_time: total wall time [s].
        num_dofs: degrees of freedom of the finite-element system [-].
    """

    signal: torch.Tensor
    scheme: str
    order: int
    time_step: float
    num_steps: int
    num_factorizations: int
    num_solves: int
    factorization_time: float
    wall_time: float
    num_dofs: int


class _Factorisations:
    """LU factorisations of ``z_j M + h B(g)``, computed on demand and reused, also for the
    conjugate system ``conj(z_j) M + h B(-g)``."""

    def __init__(self, operator: BlochTorreyOperator, gamma: float, scheme: RationalScheme):
        self._mass = operator.mass.tocsc()
        self._decay = operator.decay.tocsc()
        self._moments = [q.tocsc() for q in operator.moments]
        self._gamma = gamma
        self._scheme = scheme
        self._lu: dict[tuple, tuple] = {}
        self.count = 0
        self.seconds = 0.0
        self.solves = 0

    def solve(self, pole: int, step: float, gradient: tuple, rhs: np.ndarray) -> np.ndarray:
        """(z_pole M + step B(gradient))^-1 rhs for a block rhs (N, k)."""
        self.solves += 1
        key = (pole, step, gradient)
        if key not in self._lu:
            partner = (self._scheme.partner[pole], step, tuple(-x for x in gradient))
            if partner in self._lu:
                return np.conj(self._apply(self._lu[partner], np.conj(rhs)))
            start = time.perf_counter()
            self._lu[key] = self._factorise(self._scheme.poles[pole], step, gradient)
            self.seconds += time.perf_counter() - start
            self.count += 1
        return self._apply(self._lu[key], rhs)

    def _factorise(self, pole: complex, step: float, gradient: tuple) -> tuple:
        matrix = step * self._decay
        matrix = matrix + (pole.real * self._mass if pole.imag == 0 else pole * self._mass)
        if any(gradient):
            phase = sum(g * q for g, q in zip(gradient, self._moments, strict=True) if g)
            matrix = matrix + (1j * step * self._gamma) * phase
        real = not np.iscomplexobj(matrix.data)
        return splu(sp.csc_matrix(matrix)), real

    @staticmethod
    def _apply(factor: tuple, rhs: np.ndarray) -> np.ndarray:
        lu, real = factor
        if real:  # a real LU applied to the real and imaginary parts
            return lu.solve(np.ascontiguousarray(rhs.real)) + 1j * lu.solve(
                np.ascontiguousarray(rhs.imag)
            )
        return lu.solve(rhs)


def _check_time_step(time_step: float) -> float:
    if isinstance(time_step, bool) or not isinstance(time_step, numbers.Real):
        raise TypeError(f"time_step must be a number of seconds, got {time_step!r}")
    if not (math.isfinite(time_step) and time_step > 0):
        raise ValueError(f"time_step must be a positive finite number [s], got {time_step!r}")
    return float(time_step)


def steps_per_piece(durations: np.ndarray, time_step: float) -> np.ndarray:
    """Number of equal steps no longer than ``time_step`` [s] on each piece, (P,) [-]."""
    return np.maximum(1, np.ceil(durations / time_step * (1 - 1e-12))).astype(int)


def btpde_solve(
    operator: BlochTorreyOperator,
    acquisition,
    *,
    time_step: float,
    scheme: str = "crank-nicolson",
    normalize: bool = True,
    waveform_time_step: float | None = None,
) -> BtpdeResult:
    """Echo signal of every measurement by time-stepping the finite-element Bloch-Torrey
    system, with diagnostics.

    Args:
        operator: the finite-element system (e.g. :func:`mf_dmri.fem.bloch_torrey.
            impermeable_operator`, or a permeable multi-compartment one).
        acquisition: an ``Acquisition`` (anything with ``pieces(time_step)``) or
            ``GradientPieces``; gradients in the laboratory frame [T/m].
        time_step: largest integration step [s]; each piece is cut into equal steps.
        scheme: "crank-nicolson" (order 2), "gauss-legendre" (order 4), "radau-iia"
            (order 3, L-stable) or "backward-euler" (order 1).
        normalize: divide by r^T M m0 (the signal without diffusion weighting or
            relaxation), giving a dimensionless signal; otherwise in [m^d].
        waveform_time_step: longest piece used to discretise smooth waveforms such as
            OGSE [s] (as ``time_step`` in :func:`mf_dmri.signal.signal`); None for the
            waveform's default.  Compare engines on the same pieces.
    """
    start = time.perf_counter()
    if not isinstance(operator, BlochTorreyOperator):
        raise TypeError(
            f"operator must be a BlochTorreyOperator, got {type(operator).__name__}; build "
            "one with mf_dmri.fem.bloch_torrey.impermeable_operator"
        )
    step_limit = _check_time_step(time_step)
    method = get_scheme(scheme)
    pieces = as_pieces(acquisition, waveform_time_step)
    if not isinstance(pieces, GradientPieces):
        raise TypeError("acquisition.pieces() must return GradientPieces")
    durations = pieces.durations.detach().cpu().numpy()
    local = pieces.gradients.detach().cpu().numpy() @ operator.axes.T  # (M, P, d)
    factors = _Factorisations(operator, pieces.gyromagnetic_ratio, method)
    counts = steps_per_piece(durations, step_limit)
    state = np.repeat(operator.initial.astype(complex)[:, None], local.shape[0], axis=1)
    for index, duration in enumerate(durations):
        step = float(duration / counts[index])
        for gradient, members in _gradient_groups(local[:, index]).items():
            block = state[:, members]
            for _ in range(counts[index]):
                block = _advance(block, operator.mass, factors, method, step, gradient)
            state[:, members] = block
    echo = operator.readout @ (operator.mass @ state)
    if normalize:
        reference = operator.initial_signal()
        if reference == 0:
            raise ValueError("r^T M m0 is zero (no spins read out): use normalize=False")
        echo = echo / reference
    return BtpdeResult(
        signal=torch.as_tensor(echo, dtype=CDTYPE),
        scheme=method.name,
        order=method.order,
        time_step=step_limit,
        num_steps=int(counts.sum()),
        num_factorizations=factors.count,
        num_solves=factors.solves,
        factorization_time=factors.seconds,
        wall_time=time.perf_counter() - start,
        num_dofs=operator.num_dofs,
    )


def btpde_signal(
    operator: BlochTorreyOperator,
    acquisition,
    *,
    time_step: float,
    scheme: str = "crank-nicolson",
    normalize: bool = True,
    waveform_time_step: float | None = None,
) -> torch.Tensor:
    """Echo signal by the BTPDE reference solver, complex128 (M,); see :func:`btpde_solve`
    for the arguments (``time_step`` [s], ``waveform_time_step`` [s])."""
    return btpde_solve(
        operator,
        acquisition,
        time_step=time_step,
        scheme=scheme,
        normalize=normalize,
        waveform_time_step=waveform_time_step,
    ).signal


def _gradient_groups(gradients: np.ndarray) -> dict[tuple, list[int]]:
    """Measurements grouped by their exact local gradient on one piece."""
    groups: dict[tuple, list[int]] = {}
    for m, value in enumerate(gradients):
        groups.setdefault(tuple(float(x) for x in value), []).append(m)
    return groups


def _advance(block, mass, factors: _Factorisations, method: RationalScheme, step, gradient):
    """One step m <- c0 m - sum_j r_j (z_j M + h B)^-1 M m on a block of states (N, k)."""
    weighted = mass @ block
    result = method.constant * block if method.constant else np.zeros_like(block)
    for pole, residue in enumerate(method.residues):
        result = result - residue * factors.solve(pole, step, gradient, weighted)
    return result
