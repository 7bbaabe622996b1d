"""How a batch of measurements is propagated: the ``Propagator`` interface.

Every restricted factor (and every coupled system) reduces, for a batch of measurements,
to products of exponentials of generators over piecewise-constant gradients:

    E_m = r^T exp(-t_P A_mP) ... exp(-t_1 A_m1) c0,   A_mp = D Lambda + i gamma g_mp . Q,

(see :mod:`mf_dmri.signal.propagation`).  A :class:`PropagationBatch` holds exactly these
data; a propagator turns it into the values ``E_m`` (not yet divided by the volume).  The
algorithm is an object passed in (``signal(..., propagator=DenseExponential())``); when none
is given, :func:`choose_propagator` picks one from the measured cost model.  Each
propagator states ``tolerance``: a bound on the absolute error of every returned value,
relative to the exact product of exponentials of the (truncated) system and divided by
``r^T c0`` (the value without diffusion weighting), so that it adds directly to the error
bar of a normalised signal (``mf_dmri.signal.result.SignalResult.propagation_error``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class PiecePlan:
    """How piece ``index`` is propagated: 'zero' (no gradient), 'new', or 'same'/'conj'
    (the propagator of the earlier piece ``source``, or its complex conjugate)."""

    kind: str
    source: int


@dataclass(frozen=True)
class PropagationBatch:
    """One batch of measurements of one factor, in the factor's local frame.

    Fields (W = measurements of the batch, L = modes, d = local dimension, P = pieces):
    ``eigenvalues`` (W or 1, L) [1/m^2] (or rates [1/s] with ``diffusivity`` 1);
    ``moments`` (W or 1, d, L, L) [m]; ``initial`` (W or 1, L) start state c0;
    ``readout`` (W or 1, L) read-out vector r; ``diffusivity`` [m^2/s], scalar or (W, 1);
    ``durations`` (P,) [s]; ``gradients`` (W, P, d) [T/m]; ``plans`` one
    :class:`PiecePlan` per piece (shared by the batch); ``gamma`` [rad/(s T)];
    ``coupling`` (L, L) stiffness coupling (zero in value, carries derivatives at
    degenerate spectra) or None; ``parity`` (W or 1, L) of +1/-1 for real arithmetic
    (:mod:`mf_dmri.signal.parity`) or None.
    """

    eigenvalues: torch.Tensor
    moments: torch.Tensor
    initial: torch.Tensor
    readout: torch.Tensor
    diffusivity: torch.Tensor
    durations: torch.Tensor
    gradients: torch.Tensor
    plans: tuple[PiecePlan, ...]
    gamma: float
    coupling: torch.Tensor | None = None
    parity: torch.Tensor | None = None

    @property
    def num_modes(self) -> int:
        return int(self.eigenvalues.shape[-1])

    @property
    def num_new_pieces(self) -> int:
        """Pieces whose propagator has to be computed (not zero, repeated or conjugate)."""
        return sum(plan.kind == "new" for plan in self.plans)


@runtime_checkable
class Propagator(Protocol):
    """Computes ``r^T exp(-t_P A_P) ... exp(-t_1 A_1) c0`` for every row of a batch.

    ``tolerance``: bound on the absolute error of each value divided by ``r^T c0`` [-].
    """

    tolerance: float

    def rows_per_batch(self, num_modes: int, num_new_pieces: int, max_bytes: int) -> int:
        """Measurements per batch so that one batch stays within ``max_bytes`` [bytes]."""
        ...

    def propagate(self, batch: PropagationBatch, *, time_course: bool = False) -> torch.Tensor:
        """Values (W,) at the echo, or (W, P) after every piece, complex128."""
        ...


#: Largest number of modes for which dense exponentials are cheaper than exponential actions,
#: for waveforms with at most 2 new pieces (PGSE) and with more (sampled waveforms, OGSE);
#: measured on one core, 100 measurements on the FEM box basis of benchmarks/bench_signal.py
#: (``--crossover``): dense / Krylov time 0.67, 0.84, 2.0 for PGSE at L = 50, 70, 100 and
#: 0.64, 1.5, 2.7 for the 16-piece sampled waveform at L = 30, 50, 70.  The crossover also
#: depends on the stiffness D lambda_max tau (not known here): a ReMiDi-like capped
#: cylinder (L = 87, D lambda_max delta = 311) is near break-even.
DENSE_MAX_MODES = (80, 40)

#: Range of modes in which shift-and-invert actions are chosen for waveforms with at most 2
#: new pieces (PGSE): (fewest when derivatives are taken, most).  Forward only, they are
#: the cheapest from L = 60 to 400 (benchmarks/results/propagators.md, one core, 100 PGSE
#: measurements on a FEM box basis: dense / Krylov / shift-invert 0.75 / 0.71 / 0.63 s,
#: 1.5 / 1.3 / 0.87 s, 17 / 3.8 / 2.7 s, - / 10.7 / 10.0 s at L = 60, 87, 200, 400), and
#: ``DENSE_MAX_MODES`` is kept for the switch (the dense path is within 20% up to 80); when
#: derivatives are taken, their backward is O(m L^2) per row (no exponential
#: differentiated), so a forward + backward pass is the cheapest from L = 30
#: (benchmarks/results/grad_signal.md: 20x cheaper than dense and 8x than Krylov on 1,890
#: PGSE measurements at L = 87, 2x / 1.6x on a box at L = 50).  With more new pieces one LU
#: per piece and row costs more than the Krylov steps (2x at L = 60-100).  The choice is
#: probed on the hardest waveform before it is used (:func:`probed_choice`, by the mesh and
#: the coupled paths, with or without derivatives): strong gradients across a large domain
#: need many more than the ~12 vectors these costs assume.
SHIFT_INVERT_MODES = (30, 400)

#: ``DENSE_MAX_MODES`` on a CUDA device, where batched dense exponentials run at the rate of
#: matrix products while the Krylov and shift-and-invert steps are bound by their many
#: small, sequential kernels (benchmarks/results/gpu_signal.md, one H200, 100 measurements
#: on the 8,000-node box basis, dense / Krylov / shift-invert: 0.006 / 0.059 / 0.092 s for
#: PGSE at L = 200, 0.129 / 0.129 / 0.79 s at L = 800; 0.44 / 0.58 s and 2.9 / 0.83 s for
#: the 16-piece sampled waveform at L = 400 and 800; 2.8 / 3.8 s for the 513-piece OGSE at
#: L = 400).  Shift-and-invert is never chosen there.
CUDA_DENSE_MAX_MODES = (800, 400)
#: The same when derivatives are taken (the backward of a dense exponential is that of a
#: 2L x 2L one): forward + backward of dE/dD, dense / Krylov, 0.14 / 0.30 s and 1.07 /
#: 0.43 s for PGSE at L = 400 and 800, 0.38 / 1.55 s and 2.1 / 1.9 s for the sampled
#: waveform at L = 200 and 400 (same benchmark).
CUDA_DENSE_MAX_MODES_DIFFERENTIATED = 400


def choose_propagator(
    num_modes: int,
    num_measurements: int,
    num_new_pieces: int,
    device: torch.device,
    *,
    differentiated: bool = False,
) -> Propagator:
    """The propagator with the least predicted cost for this problem size on ``device`` (one
    place where the choice is made; the cost model is measured in benchmarks/, separately
    for the CPU and for CUDA devices).  ``differentiated``: whether derivatives will be
    taken through the values (the cost of the backward counts)."""
    from mf_dmri.signal.dense import DenseExponential
    from mf_dmri.signal.krylov import KrylovExponential
    from mf_dmri.signal.shift_invert import ShiftInvertExponential

    del num_measurements
    if device.type == "cuda":
        limit = CUDA_DENSE_MAX_MODES[0 if num_new_pieces <= 2 else 1]
        if differentiated:
            limit = min(limit, CUDA_DENSE_MAX_MODES_DIFFERENTIATED)
        return DenseExponential() if num_modes <= limit else KrylovExponential()
    if num_new_pieces > 2:
        return DenseExponential() if num_modes <= DENSE_MAX_MODES[1] else KrylovExponential()
    fewest, most = SHIFT_INVERT_MODES
    if num_modes > most:
        return KrylovExponential()
    if num_modes > DENSE_MAX_MODES[0] or (differentiated and num_modes >= fewest):
        return ShiftInvertExponential()
    return DenseExponential()


#: Krylov vectors within which shift-and-invert must reach its tolerance on the hardest
#: waveform for its choice to stand; otherwise the polynomial Krylov steps are used.  The
#: benchmarked generators need 10-16 vectors; on the P2 basis of the navis cell 722817260
#: truncated to 439 modes (PGSE 10/30 ms, b up to 3000 s/mm^2) it took 160-192 and 54 s
#: for 100 measurements, against 1.9 s for the Krylov steps; truncated to 297 modes with
#: the derivative in D, 46 s forward + 31 s backward against 1.0 s + 2.3 s.
SHIFT_INVERT_PROBE_DIMENSION = 24


def hardest_waveform(gradients: torch.Tensor, durations: torch.Tensor) -> int:
    """Index of the waveform (row of ``gradients`` (W, P, d) [T/m]) with the largest
    gradient-duration product of any piece (``durations`` (P,) [s])."""
    strength = gradients.detach().norm(dim=-1) * durations.detach()
    return int(strength.amax(dim=-1).argmax())


def probed_choice(chosen: Propagator, hardest: Callable[[], PropagationBatch]) -> Propagator:
    """``chosen``, or what :func:`choose_propagator` takes without shift-and-invert (the
    dense exponential up to ``DENSE_MAX_MODES[0]`` modes, else the Krylov steps) when
    ``chosen`` is shift-and-invert and does not reach its tolerance within
    ``SHIFT_INVERT_PROBE_DIMENSION`` vectors on the batch ``hardest()`` (one row, the
    hardest waveform; values only, also when derivatives will be taken: the backward of
    shift-and-invert grows with its vectors too).  The sizes in ``SHIFT_INVERT_MODES``
    assume ~12 vectors; strong gradients across a large domain need many more."""
    from mf_dmri.signal.dense import DenseExponential
    from mf_dmri.signal.krylov import KrylovExponential
    from mf_dmri.signal.shift_invert import ShiftInvertExponential

    if not isinstance(chosen, ShiftInvertExponential):
        return chosen
    batch = hardest()
    probe = replace(
        chosen, max_dimension=min(SHIFT_INVERT_PROBE_DIMENSION, max(8, batch.num_modes))
    )
    try:
        with torch.no_grad():
            probe.propagate(batch)
    except RuntimeError as error:
        if "did not reach its tolerance" not in str(error):
            raise
        if batch.num_modes <= DENSE_MAX_MODES[0]:
            return DenseExponential()
        return KrylovExponential(tolerance=chosen.tolerance)
    return chosen


def needs_derivatives(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will record operations on any of ``tensors``."""
    return torch.is_grad_enabled() and any(
        t is not None and isinstance(t, torch.Tensor) and t.requires_grad for t in tensors
    )
