"""Sweep output: resumable chunk shards merged into one HDF5 file, and an eigenbasis cache.

Why HDF5 (h5py) with shard files, not Zarr: the result is one self-describing file that
MATLAB, Julia, R and h5py read directly, and h5py is already a common dependency.  HDF5 is
not safe to write from several processes (that needs an MPI build) and a process killed
during a write can corrupt the whole file, so finished chunks are first committed as
small ``.npz`` shards, each sealed (mf_dmri.io.sealed: content SHA-256 plus the digests of
its inputs: the sweep configuration, its chunk, the bytes of its geometry's mesh file and
the mf_dmri version) and written atomically (temporary name, fsync, rename: a shard either
exists whole or not at all).  Local runs and Ray runs write the same shards; when every
chunk is there they are merged, checked, into ``OUT.h5`` and the shard folder is removed.
A killed sweep loses at most the chunks in flight and resumes from the shards.

Resuming checks every input: a changed configuration is refused (the message names it); a
shard that is damaged, or was made from a mesh file whose bytes have changed since, is
deleted with a warning naming the file, and only those chunks are computed again.  The
finished file carries the SHA-256 of its signals and error bars, checked by
:func:`read_sweep`.

Layout of the HDF5 file:  ``signals`` complex128 (rows, measurements), chunked by sweep
chunk; ``parameters/<column>`` (SI, one entry per row); ``measurements/<column>`` (SI);
``geometries/digest`` (one per geometry); attribute ``provenance`` (JSON).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mf_dmri.io.sealed import (
    ArtefactError,
    CorruptArtefactError,
    atomic_write_text,
    file_sha256,
    read_sealed,
    write_sealed,
)
from mf_dmri.io.vocabulary import QUANTITIES, SI_UNITS, UNITS
from mf_dmri.sweep.plan import Chunk, SweepPlan

FORMAT = "mf_dmri.sweep/1"
_LOG = logging.getLogger(__name__)
ERROR_BAR_NOTE = (
    "per row and measurement: the error bars of mf_dmri.signal.signal_with_error (mode "
    "truncation, finite elements, time stepping) of each compartment, evaluated at the "
    "smallest and largest diffusivity of the sweep (the larger of the two), weighted like "
    "the signal; a bound at those diffusivities, an estimate in between; a coupled "
    "(permeable) row carries the bar of its own coupled basis"
)


def _h5py():
    """h5py, imported on first use (an optional dependency: the 'sweep' extra)."""
    try:
        import h5py
    except ImportError as exc:
        raise ValueError("sweep output needs h5py: pip install h5py (or mf_dmri[sweep])") from exc
    return h5py


def config_hash(plan: SweepPlan) -> str:
    """SHA-256 of the spec in SI plain data: equal hashes mean the same rows and values."""
    text = json.dumps(plan.spec.to_dict(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def mesh_file_hashes(plan: SweepPlan) -> dict[str, str]:
    """SHA-256 of the bytes of every mesh file the sweep names."""
    hashes = {}
    for name in sorted({g.file for g in plan.geometries if g.file}):
        try:
            hashes[name] = file_sha256(name)
        except OSError as exc:
            raise ValueError(
                f"cannot read mesh file {name!r} named by the sweep: {exc.strerror or exc}; "
                "check the files = [...] list"
            ) from exc
    return hashes


def _changed_files(before: dict[str, str], now: dict[str, str]) -> list[str]:
    return sorted(name for name in set(before) | set(now) if before.get(name) != now.get(name))


class SweepStore:
    """Chunk sink of ``mf_dmri.sweep.run_sweep`` writing ``path`` (an ``.h5`` file).

    Args:
        path: output HDF5 file; shards live in ``<path>.parts/`` until the merge.
        plan: the sweep plan (the store checks shards and resumption against it).
        resume: continue an interrupted sweep from its shards (otherwise existing output
            or shards are an error, never silently reused or overwritten).
    """

    def __init__(self, path: str | Path, plan: SweepPlan, *, resume: bool = False) -> None:
        self.path = Path(path)
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.plan = plan
        self.hash = config_hash(plan)
        self.files = mesh_file_hashes(plan)
        self.already_complete = False
        self._verified: set[int] | None = None
        if self.path.exists():
            self._check_finished(resume)
            return
        manifest = {
            "format": FORMAT,
            "config_hash": self.hash,
            "rows": plan.num_rows,
            "measurements": plan.measurements.count,
            "chunks": len(plan.chunks),
        }
        manifest_path = self.parts / "manifest.json"
        if self.parts.exists():
            if not resume:
                raise ValueError(
                    f"{self.parts} holds an interrupted sweep: pass --resume to continue it, "
                    "or delete that folder to start again"
                )
            self._check_manifest(manifest_path, manifest)
        else:
            self.parts.mkdir(parents=True)
        atomic_write_text(manifest_path, json.dumps({**manifest, "mesh_files": self.files}))

    def _check_finished(self, resume: bool) -> None:
        if not resume:
            raise ValueError(
                f"{self.path} already exists; choose another output file or delete it "
                "(or pass --resume if it is this same sweep)"
            )
        found = read_provenance(self.path)
        if found.get("config_hash") != self.hash:
            raise ValueError(
                f"{self.path} was made from a different sweep configuration; choose another "
                "output file or delete it"
            )
        changed = _changed_files(found.get("mesh_file_sha256", {}), self.files)
        if changed:
            raise ValueError(
                f"{self.path} was made before mesh file {changed[0]!r} changed (its SHA-256 "
                "differs); delete the output to compute the sweep again, or restore the file"
            )
        self.already_complete = True
        if self.parts.exists():  # killed between the merge and the clean-up
            shutil.rmtree(self.parts)

    def _check_manifest(self, manifest_path: Path, manifest: dict) -> None:
        try:
            found = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            found = {}
        if not isinstance(found, dict) or not found:  # killed before it was written: the
            # shard seals decide
            return
        files = found.pop("mesh_files", {})
        if found != manifest:
            raise ValueError(
                f"the partial results in {self.parts} were made with a different sweep "
                "configuration (the TOML changed); use another output file or delete that "
                "folder"
            )
        for name in _changed_files(files, self.files):
            _LOG.warning(
                "mesh file %r changed since the interrupted run: the chunks of its "
                "geometries are computed again",
                name,
            )

    def _shard(self, index: int) -> Path:
        return self.parts / f"chunk_{index:07d}.npz"

    def _shard_inputs(self, chunk: Chunk) -> dict[str, str]:
        file = self.plan.geometries[chunk.geometry].file
        return {
            "config_hash": self.hash,
            "chunk": f"{chunk.index}:{chunk.row_start}:{chunk.size}",
            "mesh_file_sha256": self.files.get(file, "") if file else "",
        }

    def _read_shard(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        payload, _ = read_sealed(self._shard(chunk.index), self._shard_inputs(chunk))
        with np.load(io.BytesIO(payload), allow_pickle=False) as shard:
            return shard["signals"], shard["error_bars"]

    def completed(self) -> set[int]:
        """Chunks stored whole, from this sweep's inputs; the others' shards are deleted
        with a warning so that they are computed again."""
        if self.already_complete:
            return {c.index for c in self.plan.chunks}
        if self._verified is None:
            self._verified = set()
            for chunk in self.plan.chunks:
                if not self._shard(chunk.index).exists():
                    continue
                try:
                    self._read_shard(chunk)
                except ArtefactError as exc:
                    _LOG.warning("%s: computing chunk %d again", exc, chunk.index)
                    self._shard(chunk.index).unlink(missing_ok=True)
                    continue
                self._verified.add(chunk.index)
        return set(self._verified)

    def write(self, chunk: Chunk, signals: np.ndarray, error_bars: np.ndarray) -> None:
        expected = (chunk.size, self.plan.measurements.count)
        if signals.shape != expected or signals.dtype != np.complex128:
            raise ValueError(
                f"chunk {chunk.index}: expected complex128 {expected}, got "
                f"{signals.dtype} {signals.shape}"
            )
        if error_bars.shape != expected:
            raise ValueError(f"chunk {chunk.index}: error bars must be {expected}")
        buffer = io.BytesIO()
        np.savez(buffer, signals=signals, error_bars=np.asarray(error_bars, dtype=np.float64))
        write_sealed(self._shard(chunk.index), buffer.getvalue(), self._shard_inputs(chunk))
        if self._verified is not None:
            self._verified.add(chunk.index)

    def finalize(self, provenance: dict[str, Any]) -> Path:
        """Merge every shard into ``path`` (each checked against its seal) and remove the
        shard folder."""
        if self.already_complete:
            return self.path
        missing = [c.index for c in self.plan.chunks if not self._shard(c.index).exists()]
        if missing:
            raise ValueError(
                f"{len(missing)} chunks are missing (first {missing[:5]}); rerun with --resume"
            )
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with _h5py().File(temporary, "w") as out:
                self._write_hdf5(out, provenance)
            with open(temporary, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        finally:
            temporary.unlink(missing_ok=True)
        shutil.rmtree(self.parts)
        return self.path

    def _write_hdf5(self, out, provenance: dict[str, Any]) -> None:
        plan = self.plan
        rows = max(1, min(plan.spec.chunk_rows, plan.num_rows))
        signals = out.create_dataset(
            "signals",
            (plan.num_rows, plan.measurements.count),
            dtype=np.complex128,
            chunks=(rows, plan.measurements.count),
        )
        bars = out.create_dataset(
            "signal_error_bar",
            (plan.num_rows, plan.measurements.count),
            dtype=np.float64,
            chunks=(rows, plan.measurements.count),
        )
        bars.attrs["unit"] = "signal" if plan.spec.normalize else "m^3"
        bars.attrs["description"] = ERROR_BAR_NOTE
        for chunk in plan.chunks:
            try:
                values, errors = self._read_shard(chunk)
            except ArtefactError as exc:
                raise ValueError(f"{exc}; then rerun with --resume") from exc
            signals[chunk.row_start : chunk.row_start + chunk.size] = values
            bars[chunk.row_start : chunk.row_start + chunk.size] = errors
        _write_columns(out.create_group("parameters"), plan.parameter_table())
        _write_columns(out.create_group("measurements"), plan.measurements.columns)
        digests = np.array([g.digest() for g in plan.geometries], dtype=object)
        _write_columns(out.create_group("geometries"), {"digest": digests})
        out.attrs["format"] = FORMAT
        out.attrs["content_sha256"] = content_sha256(signals, bars)
        out.attrs["provenance"] = json.dumps(
            {**provenance, "config_hash": self.hash, "mesh_file_sha256": self.files}
        )


def content_sha256(signals, bars, block: int = 4096) -> str:
    """SHA-256 of the bytes of the ``signals`` then ``signal_error_bar`` datasets (C order),
    read ``block`` rows at a time."""
    digest = hashlib.sha256()
    for dataset in (signals, bars):
        for start in range(0, dataset.shape[0], block):
            digest.update(np.ascontiguousarray(dataset[start : start + block]).tobytes())
    return digest.hexdigest()


def _write_columns(group, columns: dict[str, np.ndarray]) -> None:
    group.attrs["columns"] = json.dumps(list(columns))
    for name, values in columns.items():
        if values.dtype == object:
            group.create_dataset(
                name, data=values.astype(str).astype(object), dtype=_h5py().string_dtype()
            )
        else:
            group.create_dataset(name, data=values).attrs["unit"] = column_unit(name)


#: SI units of stored columns that the vocabulary does not name
_COLUMN_UNITS = {
    "bvalue": "s/m^2",
    "frequency": "1/s",
    "semi_axis_x": "m",
    "semi_axis_y": "m",
    "semi_axis_z": "m",
    "major_radius": "m",
    "minor_radius": "m",
    "inner_radius": "m",
    "outer_radius": "m",
    "mesh_size": "m",
    "bead_wavelength": "m",
    "undulation_amplitude": "m",
    "undulation_wavelength": "m",
}


def file_column(name: str, values: np.ndarray) -> tuple[str, np.ndarray]:
    """(name with its file unit, values in that unit) of an SI column: ``radius`` [m] ->
    ``radius_um``; dimensionless and text columns are unchanged."""
    unit = column_unit(name) if values.dtype != object else "-"
    quantity = {v: k for k, v in SI_UNITS.items()}.get(unit, "none")
    if quantity == "none" or not UNITS[quantity]:
        return name, values
    suffix, factor = next(iter(UNITS[quantity].items()))
    return f"{name}_{suffix}", values / factor


def column_unit(name: str) -> str:
    """SI unit of a stored column (``intra.diffusivity`` -> m^2/s; '-' if dimensionless)."""
    base = name.rsplit(".", 1)[-1]
    if base in _COLUMN_UNITS:
        return _COLUMN_UNITS[base]
    return SI_UNITS[QUANTITIES.get(base, "none")]


@dataclass(frozen=True)
class SweepData:
    """A sweep read back: signals (rows, M) complex128, SI parameter and measurement
    columns, geometry digests and provenance."""

    signals: np.ndarray
    error_bars: np.ndarray
    parameters: dict[str, np.ndarray]
    measurements: dict[str, np.ndarray]
    geometry_digests: np.ndarray
    provenance: dict[str, Any]


def _read_columns(group) -> dict[str, np.ndarray]:
    result = {}
    for name in json.loads(group.attrs["columns"]):
        dataset = group[name]
        data = dataset[()]
        if dataset.dtype.kind == "O":
            data = np.array([v.decode() if isinstance(v, bytes) else v for v in data], dtype=object)
        result[name] = data
    return result


def read_sweep(path: str | Path) -> SweepData:
    """Read a finished sweep file, checking its content SHA-256
    (:class:`~mf_dmri.io.sealed.CorruptArtefactError` if it does not match)."""
    try:
        return _read_sweep(path)
    except OSError as exc:
        raise CorruptArtefactError(
            f"{path} is not a readable HDF5 sweep file ({exc}); it cannot be repaired: run "
            "the sweep again into a new file"
        ) from exc


def _read_sweep(path: str | Path) -> SweepData:
    with _h5py().File(path, "r") as handle:
        if handle.attrs.get("format") != FORMAT:
            raise ValueError(f"{path} is not an mf_dmri sweep file ({FORMAT})")
        stored = handle.attrs.get("content_sha256")
        if stored is not None and stored != content_sha256(
            handle["signals"], handle["signal_error_bar"]
        ):
            raise CorruptArtefactError(
                f"{path} is damaged: its signals do not match their SHA-256; run the sweep "
                "again into a new file"
            )
        return SweepData(
            signals=handle["signals"][()],
            error_bars=handle["signal_error_bar"][()]
            if "signal_error_bar" in handle
            else np.full(handle["signals"].shape, np.nan),
            parameters=_read_columns(handle["parameters"]),
            measurements=_read_columns(handle["measurements"]),
            geometry_digests=_read_columns(handle["geometries"])["digest"],
            provenance=json.loads(handle.attrs["provenance"]),
        )


def read_provenance(path: str | Path) -> dict[str, Any]:
    try:
        with _h5py().File(path, "r") as handle:
            return json.loads(handle.attrs.get("provenance", "{}"))
    except OSError as exc:
        raise CorruptArtefactError(
            f"{path} is not a readable HDF5 sweep file ({exc}); delete it or choose another "
            "output file"
        ) from exc


def export_table(path: str | Path, table_path: str | Path) -> Path:
    """Write the parameter table of sweep file ``path`` to ``table_path``: CSV for
    ``.csv``, Parquet for ``.parquet`` (needs pyarrow), with ``signal_error_bar_max``, the
    largest error bar of each row over its measurements.  Dimensional columns carry their
    unit in the name (``radius_um``, ``extra.diffusivity_um2_per_ms``; docs/vocabulary.md)."""
    table_path = Path(table_path)
    with _h5py().File(path, "r") as handle:
        columns = _read_columns(handle["parameters"])
        if "signal_error_bar" in handle:
            columns["signal_error_bar_max"] = handle["signal_error_bar"][()].max(axis=1)
    columns = dict(file_column(name, values) for name, values in columns.items())
    if table_path.suffix == ".parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ValueError(
                "Parquet export needs pyarrow: pip install pyarrow, or use .csv"
            ) from exc
        pq.write_table(
            pa.table({k: list(v) if v.dtype == object else v for k, v in columns.items()}),
            table_path,
        )
        return table_path
    if table_path.suffix != ".csv":
        raise ValueError(f"table format from suffix {table_path.suffix!r}: use .csv or .parquet")
    import csv

    names = list(columns)
    with open(table_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        for i in range(len(columns["row"])):
            writer.writerow([_cell(columns[n][i]) for n in names])
    return table_path


def _cell(value) -> str:
    return (
        value if isinstance(value, str) else repr(value.item() if hasattr(value, "item") else value)
    )
