"""Gradient waveforms from files: sampled shapes (``.npy`` or text) and MC/DC-style
``WAVEFORM`` schemes.

* A shape file holds the unit-amplitude effective gradient shape, (n,) or (n, C) samples
  [-], each held for one time step (the time step is not in the file: the caller gives
  it); it becomes a :class:`~mf_dmri.sequences.SampledWaveform` whose amplitude the
  acquisition sets from b-values.
* An MC/DC waveform scheme (Rafael-Patino et al. 2020, "Robust Monte-Carlo Simulations in
  Diffusion-MRI", Front. Neuroinform. 14, 8) is a header ``VERSION: WAVEFORM``, then the
  duration T [s], the number of samples n and the number of measurements M, then for each
  measurement n samples ``Gx Gy Gz`` [T/m] at times k T / (n - 1), joined linearly.
  Measurements may have different waveforms, so it becomes
  :class:`~mf_dmri.sequences.GradientPieces` (shared durations, per-measurement
  gradients): each linear segment is split into ``substeps`` pieces holding its exact
  mean, which keeps the gradient moment exact at every piece boundary and makes the
  b-value error O((T / (n - 1) / substeps)^2).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.sequences import GradientPieces, SampledWaveform
from mf_dmri.units import GAMMA_PROTON

SHAPE_SUFFIXES = (".npy", ".txt", ".csv", ".dat")


def load_waveform_shape(path: str | os.PathLike, time_step: float) -> SampledWaveform:
    """A sampled unit-amplitude waveform from ``path`` (.npy, or whitespace/comma separated
    text); ``time_step`` [s] is the duration of each sample."""
    path = Path(path)
    if path.suffix not in SHAPE_SUFFIXES:
        raise ValueError(f"{path}: waveform files end in {', '.join(SHAPE_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such waveform file")
    if path.suffix == ".npy":
        samples = np.load(path, allow_pickle=False)
    else:
        text = path.read_text().replace(",", " ")
        rows = [ln.split() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        try:
            samples = np.asarray(rows, dtype=np.float64)
        except ValueError as exc:
            raise ValueError(
                f"{path}: a waveform text file holds numbers only, one sample per line "
                "(one column per channel)"
            ) from exc
    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim not in (1, 2) or samples.shape[0] < 2 or not np.isfinite(samples).all():
        raise ValueError(
            f"{path}: the waveform must be (n,) or (n, C) finite samples with n >= 2, got "
            f"shape {samples.shape}"
        )
    return SampledWaveform(torch.as_tensor(samples, dtype=DTYPE), time_step)


def read_mcdc_waveform(
    path: str | os.PathLike, *, substeps: int = 4, gyromagnetic_ratio: float = GAMMA_PROTON
) -> GradientPieces:
    """The measurements of an MC/DC ``WAVEFORM`` scheme (see the module docstring).

    Args:
        path: the scheme file (SI: seconds, T/m).
        substeps: pieces per linear segment (>= 1).
        gyromagnetic_ratio: [rad/(s T)].
    """
    path = Path(path)
    if not (isinstance(substeps, int) and substeps >= 1):
        raise ValueError(f"substeps must be a positive integer, got {substeps!r}")
    tokens = path.read_text().split()
    if len(tokens) < 5 or tokens[0].upper() != "VERSION:" or "WAVEFORM" not in tokens[1].upper():
        raise ValueError(f"{path}: an MC/DC waveform scheme starts with 'VERSION: WAVEFORM'")
    try:
        duration, bins, count = float(tokens[2]), int(float(tokens[3])), int(float(tokens[4]))
        values = np.asarray(tokens[5:], dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: the waveform scheme holds non-numbers after its header") from exc
    if not (duration > 0 and bins >= 2 and count >= 1):
        raise ValueError(f"{path}: need duration > 0 s, >= 2 samples and >= 1 measurement")
    if values.size != count * bins * 3:
        raise ValueError(
            f"{path}: expected {count} x {bins} x 3 = {count * bins * 3} gradient values, "
            f"found {values.size}"
        )
    if duration > 1.0:
        raise ValueError(f"{path}: duration {duration:g} s; MC/DC schemes are in seconds")
    samples = values.reshape(count, bins, 3)
    fractions = (np.arange(substeps) + 0.5) / substeps
    start, end = samples[:, :-1, None, :], samples[:, 1:, None, :]
    pieces = start + (end - start) * fractions[None, None, :, None]  # (M, n-1, s, 3)
    gradients = pieces.reshape(count, (bins - 1) * substeps, 3)
    step = duration / (bins - 1) / substeps
    durations = torch.full((gradients.shape[1],), step, dtype=DTYPE)
    return GradientPieces(durations, torch.as_tensor(gradients, dtype=DTYPE), gyromagnetic_ratio)
