"""Matrix-formalism signal: compartments x acquisition -> complex signal, in torch."""

from mf_dmri.signal.api import as_pieces, domain_signal, free_signal, signal
from mf_dmri.signal.compartment import Compartment
from mf_dmri.signal.coupled import coupled_signal
from mf_dmri.signal.propagation import factor_signal

__all__ = [
    "Compartment",
    "as_pieces",
    "coupled_signal",
    "domain_signal",
    "factor_signal",
    "free_signal",
    "signal",
]
