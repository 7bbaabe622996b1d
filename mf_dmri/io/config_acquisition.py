"""The ``[acquisition]`` section of a simulation config -> measurement groups.

One source of measurements per config:

* ``b_s_per_mm2`` with ``directions`` and a ``sequence``: ``"pgse"``, ``"ogse_cos"``,
  ``"ogse_sin"`` (``num_periods``) or ``"waveform"`` (a shape file ``waveform`` sampled
  every ``sample_duration_us``); timings ``pulse_duration_ms``, ``pulse_separation_ms``;
* FSL ``bvals`` + ``bvecs`` (optionally a BIDS ``sidecar`` with the timing), a Camino
  ``scheme`` or an MRtrix ``gradient_table``: PGSE rows, timing from the file or the keys;
* an MC/DC ``waveform_scheme``: one arbitrary 3-D waveform per measurement.

``echo_time_ms`` (optional) extends the echo past the waveform; ``time_step_us`` bounds the
pieces of smooth (OGSE) waveforms; ``allow_unrefocused = true`` accepts a waveform whose
zeroth moment is not zero at the echo.  Values are checked against the ranges of
``mf_dmri.plausibility`` per key (``mf_dmri.io.plausible_keys``).  Paths are relative
to the config file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.io.plausible_keys import check_key, check_sign
from mf_dmri.io.scheme import Scheme
from mf_dmri.io.vocabulary import ConfigError, naming, split_key
from mf_dmri.plausibility import (
    ImplausibleValueError,
    Plausibility,
    check_diffusion_weighting,
    check_plausible,
)
from mf_dmri.sequences import OGSE, PGSE, Acquisition, GradientPieces
from mf_dmri.units import s_per_mm2

QUANTITIES = {
    "pulse_duration": "time",
    "pulse_separation": "time",
    "echo_time": "time",
    "time_step": "time",
    "sample_duration": "time",
    "b": "bvalue",
    "num_periods": "none",
}
FILES = ("bvals", "bvecs", "sidecar", "scheme", "gradient_table", "waveform", "waveform_scheme")
#: Unit (label, factor to SI) of the b-values of each gradient file: FSL bvals and MRtrix
#: in s/mm^2, Camino (BVECTOR) in s/m^2.
FILE_BVALUE_UNITS = {
    "bvals": ("s/mm^2", s_per_mm2),
    "gradient_table": ("s/mm^2", s_per_mm2),
    "scheme": ("s/m^2", 1.0),
}
OPTIONS = ("sequence", "directions", "substeps", "allow_unrefocused")
SEQUENCES = ("pgse", "ogse_cos", "ogse_sin", "waveform")
WHERE = "[acquisition]"


@dataclass(frozen=True, eq=False)
class MeasurementGroup:
    """Measurements sharing piece durations: their ``pieces``, their ``rows`` in the
    protocol, the ``acquisition`` they came from (None for an MC/DC scheme), the waveform
    name and the PGSE/OGSE timing [s] (None when not defined)."""

    pieces: GradientPieces
    rows: np.ndarray
    acquisition: Acquisition | None
    waveform: str
    pulse_duration: float | None = None
    pulse_separation: float | None = None


@dataclass(frozen=True, eq=False)
class Protocol:
    """All measurements of a config, as groups; ``num_measurements`` rows in total."""

    groups: tuple[MeasurementGroup, ...]
    num_measurements: int

    def scheme(self) -> Scheme:
        """b-values and directions of every row (with the timing when all rows are PGSE)."""
        bvalues = np.zeros(self.num_measurements)
        directions = np.zeros((self.num_measurements, 3))
        pgse = all(g.waveform == "PGSE" for g in self.groups)
        delta, separation, echo = (np.zeros(self.num_measurements) for _ in range(3))
        for group in self.groups:
            bvalues[group.rows] = group.pieces.bvalues().detach().numpy()
            directions[group.rows] = _directions(group)
            if pgse:
                delta[group.rows] = group.pulse_duration
                separation[group.rows] = group.pulse_separation
                echo[group.rows] = float(group.pieces.echo_time)
        scheme = Scheme(directions=directions, bvalues=bvalues)
        return scheme.with_timing(delta, separation, echo) if pgse else scheme


def _directions(group: MeasurementGroup) -> np.ndarray:
    acquisition = group.acquisition
    if acquisition is not None and acquisition.num_channels == 1:
        return acquisition.directions[:, 0].detach().numpy()
    btensors = group.pieces.btensors().detach().numpy()
    values, vectors = np.linalg.eigh(btensors)
    principal = vectors[:, :, -1]
    principal *= np.where(
        principal[np.arange(len(principal)), np.abs(principal).argmax(1)] < 0, -1, 1
    )[:, None]
    return np.where((values[:, -1] > 0)[:, None], principal, 0.0)


def _numbers(
    section: dict[str, Any], plausibility: Plausibility | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """SI values and the key as written for every numeric key of the section."""
    values, written = {}, {}
    for key, value in section.items():
        if key in FILES or key in OPTIONS:
            continue
        resolved = split_key(key, QUANTITIES, WHERE)
        if resolved.name in values:
            raise ConfigError(f"{WHERE}: {resolved.name} is given twice", (key,), WHERE)
        if isinstance(value, list) and resolved.name == "b":
            numbers = value
        else:
            numbers = [value]
        if not numbers or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers
        ):
            raise ConfigError(f"{WHERE} {key}: expected numbers, got {value!r}", (key,), WHERE)
        if resolved.name == "num_periods" and not isinstance(value, int):
            raise ConfigError(
                f"{WHERE} {key} must be a whole number of periods, got {value!r}; write e.g. "
                f"{key} = 2",
                (key,),
                WHERE,
            )
        si = [float(v) * resolved.factor for v in numbers]
        check_sign(resolved, key, si, WHERE)
        check_key(resolved.name, key, resolved.unit, resolved.factor, si, WHERE, plausibility)
        values[resolved.name] = si if resolved.name == "b" else si[0]
        written[resolved.name] = key
    return values, written


def _timing(values: dict, written: dict) -> tuple[float, float] | None:
    given = [n for n in ("pulse_duration", "pulse_separation") if n in values]
    if not given:
        return None
    if len(given) == 1:
        missing = "pulse_separation_ms" if given[0] == "pulse_duration" else "pulse_duration_ms"
        raise ConfigError(f"{WHERE} {written[given[0]]} needs {missing} too", (), WHERE)
    return values["pulse_duration"], values["pulse_separation"]


def _file_scheme(
    section: dict, base: Path, plausibility: Plausibility | None = None
) -> Scheme | None:
    """The gradient table of a bvals/bvecs, Camino or MRtrix file (None: none given); its
    b-values must weight diffusion (:func:`mf_dmri.plausibility.check_diffusion_weighting`:
    b-values in ms/um^2 read as s/mm^2 are refused)."""
    from mf_dmri.io.camino import read_camino_scheme
    from mf_dmri.io.fsl import read_fsl_scheme
    from mf_dmri.io.mrtrix import read_mrtrix_b

    sources = [k for k in ("bvals", "scheme", "gradient_table") if k in section]
    if len(sources) > 1:
        raise ConfigError(f"{WHERE}: give one of bvals/bvecs, scheme, gradient_table", (), WHERE)
    key = sources[0] if sources else None
    companions = [k for k in ("bvecs", "sidecar") if k in section]
    if companions and key != "bvals":
        names = " and ".join(companions)
        raise ConfigError(
            f"{WHERE}: {names} {'go' if len(companions) > 1 else 'goes'} with bvals (FSL) "
            f"only; {key or 'the section'} does not read {'them' if len(companions) > 1 else 'it'}"
            f": remove {names} or give bvals",
            tuple(companions),
            WHERE,
        )
    if key is None:
        return None
    given = [k for k in section if k.split("_")[0] == "b" or k == "bvalue"]
    if given:
        raise ConfigError(
            f"{WHERE}: {given[0]} and the {key} file both give b-values; keep one",
            (given[0],),
            WHERE,
        )
    with naming(WHERE, key):
        if key == "scheme":
            scheme = read_camino_scheme(base / section[key])
        elif key == "gradient_table":
            scheme = read_mrtrix_b(base / section[key])
        elif "bvecs" not in section:
            raise ValueError("give both 'bvals' and 'bvecs' FSL files")
        else:
            bvalues, directions = read_fsl_scheme(base / section[key], base / section["bvecs"])
            scheme = Scheme(directions=directions.numpy(), bvalues=bvalues.numpy())
    _check_weighting(scheme, f"{key} ({section[key]})", FILE_BVALUE_UNITS[key], plausibility)
    if key == "bvals" and "sidecar" in section:
        from mf_dmri.io.bids import read_sidecar, scheme_with_sidecar_timing

        with naming(WHERE, "sidecar"):
            path = base / section["sidecar"]
            scheme = scheme_with_sidecar_timing(scheme, read_sidecar(path), path)
    return scheme


def _check_weighting(
    scheme: Scheme, key: str, unit: tuple[str, float], plausibility: Plausibility | None
) -> None:
    """Refuse ``scheme`` unless its b-values (when it gives b-values) are each possible
    and together weight diffusion; ``key``: the file's key as written (b-values in s/m^2
    or ms/um^2 read as s/mm^2 are refused naming the file and the likely unit); ``unit``:
    (label, factor to SI) of the file's b-values, for the message."""
    if scheme.bvalues is None:
        return
    name = f"{WHERE} {key}"
    try:
        check_plausible("bvalue", scheme.bvalues, name, plausibility, given=unit, stacklevel=4)
        check_diffusion_weighting(scheme.bvalues, name, plausibility, given=unit)
    except ImplausibleValueError as exc:
        raise ConfigError(str(exc), (key,), WHERE) from exc


def _scheme_groups(
    scheme: Scheme, values: dict, written: dict, plausibility: Plausibility | None = None
) -> list[MeasurementGroup]:
    timing = _timing(values, written)
    if timing is not None and scheme.has_timing:
        raise ConfigError(
            f"{WHERE}: the gradient file already gives the timing; remove "
            f"{written['pulse_duration']} and {written['pulse_separation']}",
            (written["pulse_duration"], written["pulse_separation"]),
            WHERE,
        )
    if timing is not None:
        with naming(WHERE, written["pulse_duration"], written["pulse_separation"]):
            scheme = scheme.with_timing(*timing, values.get("echo_time"))
    with naming(WHERE, "timing"):
        pairs = scheme.acquisitions(plausibility)
    return [
        MeasurementGroup(
            acq.pieces(),
            rows,
            acq,
            "PGSE",
            float(acq.waveform.pulse_duration),
            float(acq.waveform.pulse_separation),
        )
        for acq, rows in pairs
    ]


def _waveform(
    section: dict, values: dict, written: dict, base: Path, plausibility: Plausibility | None = None
):
    sequence = section.get("sequence", "pgse")
    if sequence not in SEQUENCES:
        raise ConfigError(
            f"{WHERE} sequence must be one of {', '.join(SEQUENCES)}, got {sequence!r}",
            ("sequence",),
            WHERE,
        )
    if sequence == "waveform":
        from mf_dmri.io.waveforms import load_waveform_shape

        if "waveform" not in section or "sample_duration" not in values:
            raise ConfigError(
                f"{WHERE} sequence = 'waveform' needs waveform = FILE and sample_duration_us",
                ("waveform",),
                WHERE,
            )
        with naming(WHERE, "waveform", written["sample_duration"]):
            return load_waveform_shape(base / section["waveform"], values["sample_duration"]), (
                "sampled",
                None,
                None,
            )
    timing = _timing(values, written)
    if timing is None:
        raise ConfigError(
            f"{WHERE} needs pulse_duration_ms and pulse_separation_ms",
            ("pulse_duration_ms",),
            WHERE,
        )
    keys = (written["pulse_duration"], written["pulse_separation"])
    with naming(WHERE, *keys):
        if sequence == "pgse":
            return PGSE(*timing, plausibility=plausibility), ("PGSE", *timing)
        if "num_periods" not in values:
            raise ConfigError(f"{WHERE} an OGSE sequence needs num_periods", (), WHERE)
        periods = values["num_periods"]
        kind = sequence.split("_")[1]
        waveform = OGSE(*timing, int(periods), kind=kind, plausibility=plausibility)
        return waveform, (f"OGSE-{kind}", *timing)


def _shell_groups(
    section: dict, values: dict, written: dict, base: Path, plausibility: Plausibility | None
) -> list:
    from mf_dmri.io.sweep_toml import parse_directions

    if "b" not in values:
        raise ConfigError(
            f"{WHERE} needs b_s_per_mm2 (a list of shells), or bvals/bvecs, scheme, "
            "gradient_table or waveform_scheme",
            (),
            WHERE,
        )
    waveform, (name, delta, separation) = _waveform(section, values, written, base, plausibility)
    directions = parse_directions(section.get("directions", 1), WHERE)
    bvalues, vectors = [], []
    for b in values["b"]:
        count = 1 if b == 0 else len(directions)
        bvalues += [b] * count
        vectors.append(np.zeros((1, 3)) if b == 0 else directions)
    with naming(WHERE, written["b"], "directions"):
        acquisition = Acquisition.from_bvalues(
            waveform,
            torch.tensor(bvalues, dtype=DTYPE),
            torch.as_tensor(np.concatenate(vectors), dtype=DTYPE),
            echo_time=values.get("echo_time"),
            allow_unrefocused=section.get("allow_unrefocused", False),
            plausibility=plausibility,
        )
    with naming(WHERE, written.get("time_step", "time_step_us")):
        pieces = acquisition.pieces(values.get("time_step"))
    rows = np.arange(acquisition.num_measurements)
    return [MeasurementGroup(pieces, rows, acquisition, name, delta, separation)]


def parse_acquisition(
    section: dict[str, Any], base: Path, plausibility: Plausibility | None = None
) -> Protocol:
    """The measurements described by an ``[acquisition]`` section (paths relative to
    ``base``); ``plausibility``: the ``[checks]`` override of the range checks."""
    values, written = _numbers(section, plausibility)
    if "waveform_scheme" in section:
        from mf_dmri.io.waveforms import read_mcdc_waveform

        with naming(WHERE, "waveform_scheme"):
            pieces = read_mcdc_waveform(
                base / section["waveform_scheme"], substeps=section.get("substeps", 4)
            )
        rows = np.arange(pieces.num_measurements)
        groups = [MeasurementGroup(pieces, rows, None, "MC/DC waveform")]
    else:
        scheme = _file_scheme(section, base, plausibility)
        if scheme is not None:
            groups = _scheme_groups(scheme, values, written, plausibility)
        else:
            groups = _shell_groups(section, values, written, base, plausibility)
    total = sum(g.rows.size for g in groups)
    return Protocol(tuple(groups), total)
