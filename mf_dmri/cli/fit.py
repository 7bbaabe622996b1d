"""``mf-dmri fit``: fit a tissue model (cylinder, gamma-distributed cylinders, sphere) to
one voxel's signals, to every voxel of a table, or to every voxel of a NIfTI image.

Inputs: a CSV (columns of docs/vocabulary.md; ``mf-dmri simulate`` writes them), FSL
bvals/bvecs with a text file of signals, or a NIfTI series (``--dwi``) with its
``.bval``/``.bvec`` and optional BIDS sidecar and mask.  The timing comes from the data
(per-row columns, sidecar) or from ``--pulse-duration-ms``/``--pulse-separation-ms``.

Two engines: ``voxelwise`` (default where it applies) fits all voxels together by least
squares with interpolation tables of the model (:mod:`mf_dmri.inverse.voxelwise`), and
``ml`` is the single-voxel maximum-likelihood fit (:func:`mf_dmri.inverse.fit`) for what the
other does not do: Rician likelihood, gamma-distributed radii, a fitted axis, bootstrap.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from mf_dmri.cli.flags import positive
from mf_dmri.io.vocabulary import QUANTITIES, MfDmriDeprecationWarning, split_key

MODELS = ("cylinder", "gamma-cylinder", "sphere")
ENGINES = ("auto", "voxelwise", "ml")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="fit a tissue model to one voxel, a table of voxels or a NIfTI image",
        description="Fit cylinders or spheres (+ a hindered compartment) with standard "
        "errors; see docs/inverse.md for the models and their failure modes.",
    )
    source = parser.add_argument_group(
        "data: a CSV, FSL bvals/bvecs plus --signal, or a NIfTI image (--dwi)"
    )
    source.add_argument("--data", help="CSV: b_s_per_mm2, direction_x/y/z, signal [, voxel]")
    source.add_argument("--dwi", help="4-D NIfTI image (with .bval/.bvec/.json beside it)")
    source.add_argument("--mask", help="NIfTI mask of the voxels to fit (default: b = 0 > 0)")
    source.add_argument("--bvals", help="FSL bvals file (s/mm^2)")
    source.add_argument("--bvecs", help="FSL bvecs file")
    source.add_argument("--sidecar", help="BIDS JSON sidecar with SmallDelta/LargeDelta [s]")
    source.add_argument("--signal", help="text file with one signal per measurement")
    timing = parser.add_argument_group("timing (when the data do not give it)")
    timing.add_argument(
        "--pulse-duration-ms", type=positive(float), help="gradient pulse duration [ms]"
    )
    timing.add_argument("--pulse-separation-ms", type=positive(float), help="pulse separation [ms]")
    timing.add_argument("--delta", type=float, help=argparse.SUPPRESS)  # deprecated
    timing.add_argument("--Delta", type=float, help=argparse.SUPPRESS)  # deprecated
    parser.add_argument("--model", choices=MODELS, default="cylinder")
    parser.add_argument(
        "--extra",
        choices=("none", "zeppelin", "ball"),
        default="none",
        help="extra-cellular compartment (sphere: none or ball)",
    )
    parser.add_argument(
        "--axis", default="auto", help="fibre axis 'x,y,z', or 'auto' (tensor fit per voxel)"
    )
    parser.add_argument("--fit-axis", action="store_true", help="fit the axis (ml engine)")
    parser.add_argument(
        "--likelihood",
        choices=("gaussian", "rician"),
        default="gaussian",
        help="noise model: gaussian (least squares) or rician (ml engine, one voxel)",
    )
    parser.add_argument(
        "--sigma", type=positive(float), help="noise sigma [signal units]; default: fit"
    )
    parser.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hold a parameter fixed, unit in the key: intra_diffusivity_um2_per_ms=2",
    )
    parser.add_argument("--engine", choices=ENGINES, default="auto")
    parser.add_argument(
        "--starts", type=positive(int), default=4, help="optimiser starts (ml engine)"
    )
    parser.add_argument(
        "--unit-cutoff",
        type=positive(float),
        default=None,
        help="modes kept: eigenvalue <= cutoff / radius^2 (default: "
        "mf_dmri.inverse.MODEL_CUTOFF; lower is faster, less accurate)",
    )
    parser.add_argument(
        "--bootstrap", type=positive(int, zero=True), default=0, help="bootstrap refits (ml engine)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help=".json or .csv (one voxel or a table), or a folder for NIfTI maps (--dwi)",
    )
    parser.set_defaults(func=run)


def timing_flags(args: argparse.Namespace) -> tuple[float, float] | None:
    """(pulse_duration, pulse_separation) [s] from the flags, or None."""
    for old, new in (("delta", "pulse_duration_ms"), ("Delta", "pulse_separation_ms")):
        value = getattr(args, old)
        if value is not None:
            warnings.warn(
                f"--{old} is deprecated; write --{new.replace('_', '-')} (same unit, ms)",
                MfDmriDeprecationWarning,
                stacklevel=2,
            )
            if getattr(args, new) is None:
                setattr(args, new, value)
    given = (args.pulse_duration_ms, args.pulse_separation_ms)
    if given == (None, None):
        return None
    if None in given:
        raise ValueError("give both --pulse-duration-ms and --pulse-separation-ms")
    return given[0] * 1e-3, given[1] * 1e-3


def apply_timing(scheme, args: argparse.Namespace):
    """The scheme with its timing from the data, or else from the flags."""
    flags = timing_flags(args)
    if flags is not None and scheme.has_timing:
        raise ValueError(
            "the data already give the timing (columns or sidecar); remove "
            "--pulse-duration-ms/--pulse-separation-ms"
        )
    if flags is not None:
        return scheme.with_timing(*flags)
    if not scheme.has_timing:
        raise ValueError(
            "timing unknown: give --pulse-duration-ms and --pulse-separation-ms (or per-row "
            "pulse_duration_ms/pulse_separation_ms columns, or a BIDS sidecar)"
        )
    return scheme


def fixed_values(pairs: list[str]) -> dict[str, float]:
    """--fix KEY=VALUE pairs as SI values by parameter name."""
    fixed = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        try:
            value = float(text)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"--fix expects KEY=VALUE with the unit in the key, got {pair!r}")
        key = key.strip()
        if key in QUANTITIES and QUANTITIES[key] != "none":
            warnings.warn(
                f"--fix {key}=... in SI units is deprecated; write the unit in the key, "
                f"e.g. {key}_{'um' if QUANTITIES[key] == 'length' else 'um2_per_ms'}",
                MfDmriDeprecationWarning,
                stacklevel=2,
            )
            fixed[key] = value
            continue
        resolved = split_key(key, QUANTITIES, "--fix")
        fixed[resolved.name] = value * resolved.factor
    return fixed


def parse_axis(text: str) -> tuple[float, float, float] | None:
    if text == "auto":
        return None
    try:
        axis = tuple(float(a) for a in text.split(","))
    except ValueError as exc:
        raise ValueError(f"--axis must be 'auto' or 'x,y,z', got {text!r}") from exc
    if len(axis) != 3 or not any(axis):
        raise ValueError(f"--axis must be 'auto' or a non-zero 'x,y,z', got {text!r}")
    return axis


class Progress:
    """Voxels done, rate and time left on stderr, at most every 2 s and at the end."""

    def __init__(self, enabled: bool, what: str = "voxels") -> None:
        self.enabled, self.what = enabled, what
        self.start = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 2 and done < total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        print(
            f"fit: {done}/{total} {self.what}, {rate:.1f} {self.what}/s, "
            f"about {(total - done) / max(rate, 1e-9):.0f} s left",
            file=sys.stderr,
        )


def choose_engine(args: argparse.Namespace, voxels: int) -> str:
    needs_ml = [
        reason
        for reason, present in (
            ("--model gamma-cylinder", args.model == "gamma-cylinder"),
            ("--fit-axis", args.fit_axis),
            ("--bootstrap", args.bootstrap > 0),
            ("--likelihood rician", args.likelihood == "rician"),
        )
        if present
    ]
    engine = args.engine
    if engine == "auto":
        engine = "ml" if needs_ml else "voxelwise"
    if engine == "voxelwise" and needs_ml:
        raise ValueError(f"the voxelwise engine does not do {', '.join(needs_ml)}: use --engine ml")
    if engine == "ml" and voxels > 1:
        raise ValueError(
            f"the ml engine fits one voxel ({voxels} given); voxel-wise fits use least squares "
            f"(--engine voxelwise), which does not do {', '.join(needs_ml) or 'this'}"
        )
    return engine


def run(args: argparse.Namespace) -> int:
    from mf_dmri.cli.fit_ml import run_ml
    from mf_dmri.cli.fit_voxelwise import read_data, run_voxelwise

    scheme, data, image = read_data(args)
    scheme = apply_timing(scheme, args)
    engine = choose_engine(args, data.shape[0])
    if engine == "ml":
        return run_ml(args, scheme, data[0])
    return run_voxelwise(args, scheme, np.asarray(data), image, Path(args.output))
