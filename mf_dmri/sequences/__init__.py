"""Acquisitions layer: waveform shapes, directions, b-values and b-tensors.

Every acquisition reduces to :class:`GradientPieces` for the signal layer.
"""

from mf_dmri.sequences.acquisition import Acquisition, multi_shell
from mf_dmri.sequences.closed_forms import (
    double_pgse_btensor,
    double_pgse_bvalue,
    ogse_bvalue,
    pgse_btensor,
    pgse_bvalue,
    pgse_qvalue,
)
from mf_dmri.sequences.directions import (
    check_unit_vectors,
    electrostatic_directions,
    electrostatic_energy,
    fibonacci_sphere,
)
from mf_dmri.sequences.gram import wavevector_gram
from mf_dmri.sequences.ogse import DEFAULT_PIECES_PER_PERIOD, OGSE
from mf_dmri.sequences.pgse import PGSE, DoublePGSE
from mf_dmri.sequences.pieces import GradientPieces
from mf_dmri.sequences.sampled import SampledWaveform
from mf_dmri.sequences.shape import WaveformShape

__all__ = [
    "DEFAULT_PIECES_PER_PERIOD",
    "OGSE",
    "PGSE",
    "Acquisition",
    "DoublePGSE",
    "GradientPieces",
    "SampledWaveform",
    "WaveformShape",
    "check_unit_vectors",
    "double_pgse_btensor",
    "double_pgse_bvalue",
    "electrostatic_directions",
    "electrostatic_energy",
    "fibonacci_sphere",
    "multi_shell",
    "ogse_bvalue",
    "pgse_btensor",
    "pgse_bvalue",
    "pgse_qvalue",
    "wavevector_gram",
]
