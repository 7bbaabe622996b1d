"""Matrix-formalism signal: compartments x acquisition -> complex signal, in torch."""

from mf_dmri.signal.api import as_pieces, domain_signal, free_signal, signal
from mf_dmri.signal.compartment import Compartment
from mf_dmri.signal.coupled import coupled_signal
from mf_dmri.signal.dense import DenseExponential
from mf_dmri.signal.error_estimate import signal_with_error
from mf_dmri.signal.krylov import KrylovExponential
from mf_dmri.signal.propagation import factor_signal
from mf_dmri.signal.propagators import Propagator, choose_propagator
from mf_dmri.signal.result import SignalResult
from mf_dmri.signal.shift_invert import ShiftInvertExponential

__all__ = [
    "Compartment",
    "DenseExponential",
    "KrylovExponential",
    "Propagator",
    "ShiftInvertExponential",
    "SignalResult",
    "as_pieces",
    "choose_propagator",
    "coupled_signal",
    "domain_signal",
    "factor_signal",
    "free_signal",
    "signal",
    "signal_with_error",
]
