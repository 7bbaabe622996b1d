"""One case of the coverage study: the signal with its bar against a converged reference.

Shared by the analytic cases (validation/coverage_study.py) and the mesh cases
(validation/coverage_mesh.py); only the compartment and the reference differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from mf_dmri.signal.error_estimate import signal_with_error


def measurement_label(geometry: str, case) -> str:
    """``geometry`` followed by the case's b-values [s/mm^2], timing, kind and D [um^2/ms]."""
    b = "/".join(f"{v:g}" for v in case.bvalues)
    return f"{geometry} b={b} {case.timing} {case.kind} D={case.diffusivity:g}"


def run_coverage_case(
    case, compartment: Callable, pieces, reference: Callable
) -> tuple[dict, object]:
    """Signal, bar and true error of ``case``: ``compartment()`` builds the compartment
    (timed with the signal, so a basis built on first use counts), ``reference(result)``
    gives the converged signal.  Returns the row and the ``signal_with_error`` result (for
    fields a study adds)."""
    start = time.perf_counter()
    result = signal_with_error(compartment(), pieces)
    seconds = time.perf_counter() - start
    converged: torch.Tensor = reference(result)
    error = (result.signal - converged).abs().numpy()
    bar = result.error_bar.numpy()
    row = {
        "case": case,
        "signal": result.signal.real.numpy(),
        "error": error,
        "bar": bar,
        "covered": bool(np.all(error <= bar)),
        "modes": result.num_modes,
        "seconds": seconds,
        "within": result.within_tolerance,
    }
    return row, result
