"""dipy ``GradientTable`` in and out (dipy is optional: imported only here, on use).

dipy keeps b-values in s/mm^2 and the PGSE timing as ``small_delta`` (pulse duration) and
``big_delta`` (pulse separation) in seconds (``dipy.core.gradients.gradient_table``); one
timing per table.  The conversions to SI happen here.
"""

from __future__ import annotations

import numpy as np

from mf_dmri.io.scheme import Scheme
from mf_dmri.sequences import Acquisition
from mf_dmri.units import s_per_mm2


def _dipy_gradients():
    try:
        from dipy.core import gradients
    except ImportError as exc:  # pragma: no cover - dipy is in the test extra
        raise ImportError(
            "dipy GradientTable support needs dipy: pip install dipy (or mf_dmri[dipy])"
        ) from exc
    return gradients


def scheme_from_gradient_table(
    gtab, *, pulse_duration: float | None = None, pulse_separation: float | None = None
) -> Scheme:
    """The rows of a dipy ``GradientTable``.

    Args:
        gtab: the table (b-values in s/mm^2, ``small_delta``/``big_delta`` in s if set).
        pulse_duration: delta [s] when the table has no ``small_delta``.
        pulse_separation: Delta [s] when the table has no ``big_delta``.
    """
    small, big = gtab.small_delta, gtab.big_delta
    for name, stored, given in (
        ("pulse_duration", small, pulse_duration),
        ("pulse_separation", big, pulse_separation),
    ):
        if stored is not None and given is not None and not np.isclose(stored, given):
            raise ValueError(
                f"{name}={given!r} s disagrees with the GradientTable's "
                f"{'small_delta' if name == 'pulse_duration' else 'big_delta'} = {stored!r} s"
            )
    small = small if small is not None else pulse_duration
    big = big if big is not None else pulse_separation
    bvalues = np.asarray(gtab.bvals, dtype=np.float64) * s_per_mm2
    directions = np.asarray(gtab.bvecs, dtype=np.float64)
    directions = np.where((bvalues > 0)[:, None], directions, 0.0)
    scheme = Scheme(directions=directions, bvalues=bvalues)
    if small is None or big is None:
        return scheme
    return scheme.with_timing(float(small), float(big))


def acquisition_from_gradient_table(
    gtab, *, pulse_duration: float | None = None, pulse_separation: float | None = None
) -> Acquisition:
    """A PGSE ``Acquisition`` from a dipy ``GradientTable`` (timings as in
    :func:`scheme_from_gradient_table`; one timing per table)."""
    scheme = scheme_from_gradient_table(
        gtab, pulse_duration=pulse_duration, pulse_separation=pulse_separation
    )
    ((acquisition, rows),) = scheme.acquisitions()
    return acquisition


def to_gradient_table(source: Scheme | Acquisition, *, b0_threshold: float = 50.0):
    """A dipy ``GradientTable`` of a one-timing scheme or PGSE acquisition.

    Args:
        source: a :class:`Scheme` or a one-channel PGSE ``Acquisition``.
        b0_threshold: b-values at or below it [s/mm^2] count as unweighted in dipy.
    """
    gradients = _dipy_gradients()
    scheme = Scheme.from_acquisition(source) if isinstance(source, Acquisition) else source
    timing = {}
    if scheme.has_timing:
        timings = scheme.timings()
        if len(timings) != 1:
            raise ValueError(
                f"a dipy GradientTable holds one timing; this scheme has {len(timings)}: "
                "split it by timing first (Scheme.timings)"
            )
        (delta, separation, _), _ = timings[0]
        timing = {"small_delta": delta, "big_delta": separation}
    bvals = scheme.bvalues_si() / s_per_mm2
    return gradients.gradient_table(
        bvals, bvecs=scheme.directions, b0_threshold=b0_threshold, **timing
    )
