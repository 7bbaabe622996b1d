"""Diffusion images as NIfTI (nibabel) with FSL ``.bval``/``.bvec`` and a BIDS sidecar.

``dwi.nii.gz`` holds the signals (x, y, z, volumes); ``dwi.bval`` / ``dwi.bvec`` the
gradient table (FSL layout, b in s/mm^2); ``dwi.json`` the timing and provenance
(:mod:`mf_dmri.io.bids`).  Scalar maps (parameter estimates, standard errors, masks) are
3-D NIfTI files.  Voxel sizes are in mm (the NIfTI default unit).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mf_dmri.io.bids import read_sidecar, scheme_with_sidecar_timing, write_sidecar
from mf_dmri.io.fsl import read_fsl_bvals, read_fsl_bvecs, write_fsl_scheme
from mf_dmri.io.results import sidecar_path
from mf_dmri.io.scheme import Scheme
from mf_dmri.io.sealed import atomic_write_bytes
from mf_dmri.units import s_per_mm2

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _nibabel():
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is a dependency
        raise ImportError("NIfTI files need nibabel: pip install nibabel") from exc
    return nibabel


def nifti_stem(path: str | os.PathLike) -> Path:
    """``path`` without its NIfTI suffix (``a/dwi.nii.gz`` -> ``a/dwi``)."""
    path = Path(path)
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    raise ValueError(f"{path}: a NIfTI file name ends in .nii or .nii.gz")


def companion(path: str | os.PathLike, suffix: str) -> Path:
    """A file beside a NIfTI image with the same stem (``dwi.nii.gz`` -> ``dwi.bval``)."""
    stem = nifti_stem(path)
    return stem.with_name(stem.name + suffix)


def write_volume(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray | None = None):
    """Write a 3-D or 4-D array as NIfTI (float64 unless the array is integer)."""
    nib = _nibabel()
    path = Path(path)
    nifti_stem(path)
    data = np.asarray(data)
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)
    elif data.dtype.kind != "i" and data.dtype.kind != "u":
        data = data.astype(np.float64)
    image = nib.Nifti1Image(data, np.eye(4) if affine is None else affine)
    payload = image.to_bytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    return atomic_write_bytes(path, payload)


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(data, affine) of a NIfTI file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such NIfTI file")
    image = _nibabel().load(str(path))
    return np.asarray(image.dataobj), image.affine


@dataclass(frozen=True, eq=False)
class DiffusionImage:
    """A diffusion image read from disk: ``data`` (x, y, z, M), its ``affine``, the
    gradient ``scheme`` (with timing when the sidecar gives it) and the ``sidecar``."""

    data: np.ndarray
    affine: np.ndarray
    scheme: Scheme
    sidecar: dict[str, Any]


def write_dwi(
    path: str | os.PathLike,
    data: np.ndarray,
    scheme: Scheme,
    sidecar: dict[str, Any],
    affine: np.ndarray | None = None,
) -> Path:
    """Write ``data`` (x, y, z, M) with ``.bval``/``.bvec`` from ``scheme`` and the JSON
    ``sidecar`` (give its timing fields with :func:`mf_dmri.io.bids.timing_fields`)."""
    data = np.asarray(data)
    if data.ndim != 4 or data.shape[3] != scheme.num_rows:
        raise ValueError(
            f"the image must be (x, y, z, {scheme.num_rows}) for {scheme.num_rows} "
            f"measurements, got {data.shape}"
        )
    path = write_volume(path, data, affine)
    write_fsl_scheme(
        companion(path, ".bval"), companion(path, ".bvec"), scheme.bvalues_si(), scheme.directions
    )
    write_sidecar(sidecar_path(path), sidecar)
    return path


def check_content(fields: dict[str, Any], files: list[Path], sidecar: Path) -> None:
    """Compare ``files`` with the SHA-256 that an mf_dmri sidecar records for them
    (:class:`~mf_dmri.io.sealed.CorruptArtefactError` on a mismatch)."""
    from mf_dmri.io.sealed import CorruptArtefactError, file_sha256

    recorded = (fields.get("mf_dmri") or {}).get("content_sha256") or {}
    for file in files:
        expected = recorded.get(file.name)
        if expected is not None and file_sha256(file) != expected:
            raise CorruptArtefactError(
                f"{file} does not match the SHA-256 recorded in {sidecar}: it was damaged or "
                "edited after mf-dmri simulate wrote it; simulate it again"
            )


def read_dwi(
    path: str | os.PathLike,
    *,
    bvals: str | os.PathLike | None = None,
    bvecs: str | os.PathLike | None = None,
    sidecar: str | os.PathLike | None = None,
) -> DiffusionImage:
    """Read a diffusion image; ``bvals``, ``bvecs`` and ``sidecar`` default to the files
    with the image's stem (the sidecar is optional: without it the scheme has no timing)."""
    data, affine = read_volume(path)
    if data.ndim != 4:
        raise ValueError(f"{path}: a diffusion image is 4-D (x, y, z, volumes), got {data.shape}")
    bvals = Path(bvals) if bvals else companion(path, ".bval")
    bvecs = Path(bvecs) if bvecs else companion(path, ".bvec")
    for name, file in (("bvals", bvals), ("bvecs", bvecs)):
        if not file.is_file():
            raise FileNotFoundError(f"{file}: no {name} file for {path}; give --{name}")
    values, vectors = read_fsl_bvals(bvals), read_fsl_bvecs(bvecs)
    if not values.size == vectors.shape[0] == data.shape[3]:
        raise ValueError(
            f"{path} has {data.shape[3]} volumes, {bvals} {values.size} b-values and {bvecs} "
            f"{vectors.shape[0]} vectors: they must describe the same volumes"
        )
    vectors = np.where((values > 0)[:, None], vectors, 0.0)
    scheme = Scheme(directions=vectors, bvalues=values * s_per_mm2)
    sidecar = Path(sidecar) if sidecar else sidecar_path(path)
    fields = read_sidecar(sidecar) if sidecar.is_file() else {}
    check_content(fields, [Path(path), bvals, bvecs], sidecar)
    scheme = scheme_with_sidecar_timing(scheme, fields, sidecar)
    return DiffusionImage(np.asarray(data, dtype=np.float64), affine, scheme, fields)
