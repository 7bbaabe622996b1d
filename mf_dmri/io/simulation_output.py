"""Files written by ``mf-dmri simulate``: a table (CSV/NPZ) or a NIfTI phantom.

Columns (docs/vocabulary.md): per measurement ``b_s_per_mm2``, ``direction_x/y/z``,
``gradient_mT_per_m`` (largest amplitude), ``pulse_duration_ms``, ``pulse_separation_ms``
(empty for other waveforms), ``echo_time_ms``; per voxel and measurement ``signal`` (the
magnitude, with Rician noise when ``[phantom] sigma`` is set), ``signal_real`` and
``signal_imag`` (noise-free), ``signal_error_bar`` (bound on the absolute error of the
noise-free signal from ``mf_dmri.signal.signal_with_error``: mode truncation, finite
elements, time stepping) and with ``[output] per_compartment = true`` one
``signal_<compartment>`` column per compartment (its real contribution; they add up to
``signal_real``).  Several voxels give one row per voxel and measurement, with a ``voxel``
column and one column per varying value (``axon.radius_um``).

NIfTI (``dwi.nii.gz``): the magnitudes (x, y, z, M) with ``dwi.bval``/``dwi.bvec``, the BIDS
sidecar ``dwi.json`` (timing, provenance), ``dwi_error_bar.nii.gz`` (x, y, z, M),
``dwi_mask.nii.gz``, one ground-truth map per varying value (``dwi_axon_radius_um.nii.gz``,
in the key's unit) and ``dwi_signal_<compartment>.nii.gz`` when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mf_dmri.io.results import write_table
from mf_dmri.io.vocabulary import column, to_file_unit

ERROR_BAR_NOTE = (
    "signal_error_bar bounds |signal - exact| of the noise-free signal: mode truncation, "
    "finite-element discretisation and time stepping (mf_dmri.signal.SignalResult); not "
    "the approximation of a curved cell by a polyhedron, nor noise"
)


def measurement_columns(protocol) -> dict[str, np.ndarray]:
    """Per-measurement columns of a :class:`~mf_dmri.io.config_acquisition.Protocol`."""
    scheme = protocol.scheme()
    count = protocol.num_measurements
    columns = {column("b"): to_file_unit("b", scheme.bvalues_si())}
    for axis, name in enumerate("xyz"):
        columns[f"direction_{name}"] = scheme.unit_directions()[:, axis]
    amplitude, delta, separation, echo = (np.full(count, np.nan) for _ in range(4))
    for group in protocol.groups:
        norms = group.pieces.gradients.detach().norm(dim=-1).max(dim=1).values
        amplitude[group.rows] = norms.numpy()
        echo[group.rows] = float(group.pieces.echo_time)
        if group.pulse_duration is not None:
            delta[group.rows] = group.pulse_duration
            separation[group.rows] = group.pulse_separation
    columns[column("gradient")] = to_file_unit("gradient", amplitude)
    columns[column("pulse_duration")] = to_file_unit("pulse_duration", delta)
    columns[column("pulse_separation")] = to_file_unit("pulse_separation", separation)
    columns[column("echo_time")] = to_file_unit("echo_time", echo)
    return columns


def magnitudes(signals: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """|signal|, or the Rician magnitude |signal + sigma (n1 + i n2)| for sigma > 0."""
    if sigma == 0:
        return np.abs(signals)
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=signals.shape) + 1j * rng.normal(size=signals.shape)
    return np.abs(signals + sigma * noise)


def value_key(compartment, quantity: str) -> str:
    """``axon.radius_um``: a voxel value's column name in the canonical file unit."""
    return f"{compartment}.{column(quantity)}"


def _file_value(quantity: str, values: np.ndarray) -> np.ndarray:
    return to_file_unit(quantity, values)


def write_simulation(path: Path, config, result, metadata: dict[str, Any]) -> list[Path]:
    """Write the result as a table or a NIfTI phantom; returns the files written."""
    measured = magnitudes(result.signals, config.phantom.sigma, config.phantom.seed)
    metadata = {**metadata, "signal_error_bar": ERROR_BAR_NOTE, "notes": list(result.notes)}
    if str(path).endswith((".nii", ".nii.gz")):
        return _write_nifti(path, config, result, measured, metadata)
    count, measurements = result.signals.shape
    columns: dict[str, np.ndarray] = {}
    if count > 1:
        columns["voxel"] = np.repeat(np.arange(count), measurements)
        for compartment, quantity in config.varying():
            values = _file_value(quantity, result.voxels[(compartment, quantity)])
            columns[value_key(compartment, quantity)] = np.repeat(values, measurements)
    for name, values in measurement_columns(config.protocol).items():
        columns[name] = np.tile(values, count)
    columns["signal"] = measured.reshape(-1)
    columns["signal_real"] = result.signals.real.reshape(-1)
    columns["signal_imag"] = result.signals.imag.reshape(-1)
    columns["signal_error_bar"] = result.error_bars.reshape(-1)
    if config.per_compartment:
        for name, part in result.contributions.items():
            columns[f"signal_{name}"] = part.reshape(-1)
    return [write_table(path, columns, metadata)]


def _write_nifti(path: Path, config, result, measured, metadata) -> list[Path]:
    from mf_dmri.io.bids import timing_fields
    from mf_dmri.io.nifti import companion, nifti_stem, write_dwi, write_volume

    count, measurements = result.signals.shape
    shape = config.grid_shape(count)
    scheme = config.protocol.scheme()
    waveforms = sorted({g.waveform for g in config.protocol.groups})
    sidecar = {**timing_fields(scheme, waveforms[0] if len(waveforms) == 1 else "mixed")}
    sidecar["mf_dmri"] = metadata
    written = [write_dwi(path, measured.reshape(*shape, measurements), scheme, sidecar)]
    stem = nifti_stem(path)
    suffix = ".nii.gz" if str(path).endswith(".gz") else ".nii"

    def beside(name: str) -> Path:
        return stem.with_name(f"{stem.name}_{name}{suffix}")

    written.append(write_volume(beside("error_bar"), result.error_bars.reshape(*shape, -1)))
    written.append(write_volume(beside("mask"), np.ones(shape, dtype=np.uint8)))
    for compartment, quantity in config.varying():
        values = _file_value(quantity, result.voxels[(compartment, quantity)])
        name = f"{compartment}_{column(quantity)}"
        written.append(write_volume(beside(name), values.reshape(shape)))
    if config.per_compartment:
        for name, part in result.contributions.items():
            written.append(write_volume(beside(f"signal_{name}"), part.reshape(*shape, -1)))
    written += [companion(path, ".bval"), companion(path, ".bvec")]
    seal_sidecar(written, sidecar)
    return written


def seal_sidecar(written: list[Path], sidecar: dict[str, Any]) -> None:
    """Rewrite the image's sidecar with ``mf_dmri.content_sha256``: the SHA-256 of every
    file written beside it (checked by :func:`mf_dmri.io.nifti.read_dwi`)."""
    from mf_dmri.io.bids import write_sidecar
    from mf_dmri.io.results import sidecar_path
    from mf_dmri.io.sealed import file_sha256

    hashes = {p.name: file_sha256(p) for p in written}
    sidecar["mf_dmri"] = {**sidecar["mf_dmri"], "content_sha256": hashes}
    write_sidecar(sidecar_path(written[0]), sidecar)
