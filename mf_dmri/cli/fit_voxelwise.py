"""The ``voxelwise`` engine of ``mf-dmri fit`` and the data readers of every engine.

All voxels (one, a table, or the voxels of a NIfTI mask) are fitted together by least
squares (:func:`mf_dmri.inverse.voxelwise.fit_voxels`); the fibre axis of a cylinder is
given or comes from a tensor fit per voxel.  Outputs: a JSON summary (one voxel), a CSV
table (one row per voxel), or a folder of NIfTI maps (``<key>.nii.gz`` and
``<key>_se...`` for every fitted parameter, ``converged``, ``sigma``, ``fit.json``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mf_dmri.cli.fit import Progress, fixed_values, parse_axis
from mf_dmri.io.fit_output import file_unit, keys, write_json, write_maps, write_voxel_table


@dataclass(frozen=True)
class ImageLayout:
    """Where the fitted voxels of a NIfTI image lie: its 3-D ``mask`` and ``affine``."""

    mask: np.ndarray
    affine: np.ndarray


def read_data(args: argparse.Namespace):
    """(scheme, signals (V, M), ImageLayout or None) from the chosen data source."""
    from mf_dmri.io.measurements import read_fsl_measurements, read_measurement_table

    sources = [name for name in ("data", "dwi", "signal") if getattr(args, name)]
    if len(sources) != 1:
        raise ValueError(
            "give exactly one data source: --data FILE.csv, --dwi IMAGE.nii.gz, or "
            "--bvals/--bvecs/--signal"
        )
    if args.data:
        scheme, data = read_measurement_table(args.data)
        return scheme, data, None
    if args.signal:
        if not (args.bvals and args.bvecs):
            raise ValueError("with --signal also give --bvals and --bvecs")
        scheme, data = read_fsl_measurements(args.bvals, args.bvecs, args.signal)
        return scheme, data, None
    return _read_image(args)


def _read_image(args: argparse.Namespace):
    from mf_dmri.io.nifti import read_dwi, read_volume

    image = read_dwi(args.dwi, bvals=args.bvals, bvecs=args.bvecs, sidecar=args.sidecar)
    volumes = image.data
    if args.mask:
        mask, _ = read_volume(args.mask)
        if mask.shape != volumes.shape[:3]:
            raise ValueError(
                f"--mask {args.mask} is {mask.shape} but the image is {volumes.shape[:3]}"
            )
        mask = mask > 0
    else:
        unweighted = image.scheme.bvalues_si() < 50e6
        if not unweighted.any():
            raise ValueError("the image has no b = 0 volume to make a mask from: give --mask")
        mask = volumes[..., unweighted].mean(axis=3) > 0
    if not mask.any():
        raise ValueError("the mask selects no voxel")
    return image.scheme, volumes[mask], ImageLayout(mask, image.affine)


def _model(args: argparse.Namespace, data: np.ndarray):
    from mf_dmri.inverse import CylinderModel, SphereModel

    cutoff = {} if args.unit_cutoff is None else {"unit_cutoff": args.unit_cutoff}
    if args.model == "sphere":
        model = SphereModel(extra=args.extra, **cutoff)
    else:
        model = CylinderModel(extra=args.extra, **cutoff)
    positive = data[data > 0]
    s0 = float(np.median(data.max(axis=1))) if positive.size else 1.0
    return model, model.parameters(fixed_values(args.fix), s0=s0)


def _axes(args, model, protocol, data: torch.Tensor) -> torch.Tensor | None:
    from mf_dmri.inverse import CylinderModel
    from mf_dmri.inverse.initial import tensor_axes

    if not isinstance(model, CylinderModel):
        return None
    axis = parse_axis(args.axis)
    if axis is None:
        return tensor_axes(protocol, data)
    unit = torch.tensor(axis, dtype=torch.float64)
    return (unit / unit.norm()).expand(data.shape[0], 3).clone()


def _columns(result, parameters) -> dict[str, np.ndarray]:
    units = {p.name: p.unit for p in parameters}
    columns = {}
    for name, values in result.estimates.items():
        key, se_key, factor = keys(name, units.get(name, ""))
        columns[key] = values.numpy() / factor
        if name in result.standard_errors:
            columns[se_key] = result.standard_errors[name].numpy() / factor
    columns["sigma"] = result.sigma.numpy()
    columns["converged"] = result.converged.numpy().astype(np.float64)
    return columns


def _summary(args, result, parameters, model, columns, seconds, table_error) -> dict:
    units = {p.name: p.unit for p in parameters}
    voxels = int(result.converged.numel())
    summary = {
        "engine": "voxelwise",
        "model": args.model,
        "extra_compartment": args.extra,
        "likelihood": "gaussian (least squares)",
        "voxels": voxels,
        "converged_voxels": int(result.converged.sum()),
        "seconds": seconds,
        "voxels_per_second": voxels / max(seconds, 1e-9),
        "model_table_error": table_error,
        "units": {keys(n, units.get(n, ""))[0]: file_unit(n, units.get(n, "")) for n in units},
    }
    if voxels == 1:
        rows = {}
        for name in result.estimates:
            key, se_key, _ = keys(name, units.get(name, ""))
            rows[key] = {"estimate": float(columns[key][0]), "fitted": se_key in columns}
            if se_key in columns:
                rows[key]["standard_error"] = float(columns[se_key][0])
            rows[key]["unit"] = file_unit(name, units.get(name, ""))
        summary["parameters"] = rows
        summary["sigma"] = float(result.sigma[0])
        summary["converged"] = bool(result.converged[0])
    return summary


def run_voxelwise(args, scheme, data: np.ndarray, image: ImageLayout | None, output: Path) -> int:
    from mf_dmri.inverse.voxel_model import VoxelModel
    from mf_dmri.inverse.voxelwise import fit_voxels

    pairs = scheme.acquisitions()
    protocol = [acquisition for acquisition, _ in pairs]
    order = np.concatenate([rows for _, rows in pairs])
    signals = torch.as_tensor(data[:, order], dtype=torch.float64)
    model, parameters = _model(args, data)
    voxel_model = VoxelModel.build(model, protocol, parameters)
    axes = _axes(args, model, protocol, signals)
    start = time.perf_counter()
    result = fit_voxels(
        voxel_model, signals, axes, sigma=args.sigma, progress=Progress(not args.no_progress)
    )
    seconds = time.perf_counter() - start
    columns = _columns(result, parameters)
    summary = _summary(args, result, parameters, model, columns, seconds, voxel_model.table_error)
    written = _write(output, columns, summary, image, axes)
    print(
        f"mf-dmri fit: {args.model} (voxelwise), {signals.shape[0]} voxel(s) x "
        f"{signals.shape[1]} measurements, {summary['converged_voxels']} converged, "
        f"{summary['voxels_per_second']:.1f} voxels/s -> {written}"
    )
    if signals.shape[0] == 1:
        for key, row in summary["parameters"].items():
            if "standard_error" in row:
                print(f"  {key:34s} {row['estimate']:.6g} +- {row['standard_error']:.3g}")
    return 0 if bool(result.converged.all()) else 3


def _write(output: Path, columns, summary, image: ImageLayout | None, axes) -> Path:
    if image is not None:
        maps = {}
        for key, values in columns.items():
            volume = np.full(image.mask.shape, np.nan)
            volume[image.mask] = values
            maps[key] = volume
        if axes is not None:
            for index, name in enumerate("xyz"):
                volume = np.full(image.mask.shape, np.nan)
                volume[image.mask] = axes[:, index].numpy()
                maps[f"axis_{name}"] = volume
        write_maps(output, maps, image.affine)
        write_json(output / "fit.json", summary)
        return output
    if output.suffix == ".json" and summary["voxels"] == 1:
        return write_json(output, summary)
    if output.suffix == ".csv":
        return write_voxel_table(output, {"voxel": np.arange(summary["voxels"]), **columns})
    raise ValueError(
        f"output {output.name!r}: write one voxel as .json or .csv, several as .csv, and "
        "NIfTI maps (--dwi) into a folder"
    )
