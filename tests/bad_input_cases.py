"""The table of bad inputs run through the ``mf-dmri`` command line (tests/test_bad_inputs.py).

One row per case: an id, the command line (built in a scratch folder holding the files the
case writes), the outcome class and the fragments the user must see (the offending key,
file or flag).  Outcome classes (docs/errors.md counts them):

- ``error``: exit code 1 (bad input) or 3 (stored result unusable), one line on stderr
  naming the problem;
- ``usage``: exit code 2, argparse's usage line and one error line naming the flag;
- ``report``: exit code 1 with a list of the problems found (``mesh check``);
- ``recomputed``: exit code 0, a warning naming the damaged or stale file, the result equal
  to an undamaged run;
- ``handled``: exit code 0, the input is valid (an edge case handled correctly).

Run ``python tests/bad_input_cases.py`` to rewrite the count table in docs/errors.md.
"""

from __future__ import annotations

import copy
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from file_damage import damage

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "errors.md"
OUTCOMES = ("error", "usage", "report", "recomputed", "handled")
DAMAGE_SEED = 20261203


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(folder)`` writes its files and returns the argv."""

    id: str
    build: Callable[[Path], list[str]]
    outcome: str
    fragments: tuple[str, ...] = ()
    code: int | None = None  # expected exit code when not the outcome's default
    slow: bool = False
    check: Callable[[Path], None] | None = field(default=None, compare=False)


# --------------------------------------------------------------------- TOML writing
def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def toml(data: dict) -> str:
    """TOML text of ``data``: top-level scalars, tables and arrays of tables."""
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    lines += [
        f"{k} = {_value(v)}"
        for k, v in data.items()
        if isinstance(v, list) and not (v and isinstance(v[0], dict))
    ]
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for table in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


SIMULATE = {
    "compartment": [
        {
            "name": "axon",
            "shape": "cylinder",
            "radius_um": 3.0,
            "axis": [0.0, 0.0, 1.0],
            "diffusivity_um2_per_ms": 2.0,
            "signal_fraction": 0.6,
        },
        {"name": "extra", "shape": "free", "diffusivity_um2_per_ms": 1.0},
    ],
    "acquisition": {
        "sequence": "pgse",
        "pulse_duration_ms": 10.0,
        "pulse_separation_ms": 30.0,
        "b_s_per_mm2": [0, 1000],
        "directions": 3,
    },
}

SWEEP = {
    "name": "bad-input",
    "seed": 1,
    "chunk_rows": 4,
    "geometry": [
        {
            "shape": "cylinder",
            "radius_um": [1.0, 2.0],
            "axis": [0.0, 0.0, 1.0],
            "length_scale_um": 2.0,
        }
    ],
    "tissue": {"diffusivity_um2_per_ms": [1.0, 2.0]},
    "acquisition": [
        {
            "sequence": "pgse",
            "pulse_duration_ms": 10.0,
            "pulse_separation_ms": 30.0,
            "b_s_per_mm2": [0, 1000],
            "directions": 3,
        }
    ],
}

_DELETE = object()


def _edit(base: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(base)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def simulate(path: tuple, value, *extra: str, output: str = "out.csv") -> Callable:
    """argv of ``simulate`` on the base config with ``path`` set to ``value``."""

    def build(folder: Path) -> list[str]:
        config = folder / "c.toml"
        config.write_text(toml(_edit(SIMULATE, path, value) if path else SIMULATE))
        return ["simulate", str(config), "-o", str(folder / output), "--no-progress", *extra]

    return build


def sweep(path: tuple, value, *extra: str) -> Callable:
    """argv of ``sweep --dry-run`` on the base sweep with ``path`` set to ``value``."""
    return _sweep_data(_edit(SWEEP, path, value) if path else SWEEP, *extra)


def _sweep_data(data: dict, *extra: str) -> Callable:
    """argv of ``sweep --dry-run`` on the config ``data``."""

    def build(folder: Path) -> list[str]:
        config = folder / "s.toml"
        config.write_text(toml(data))
        return ["sweep", str(config), "--out", str(folder / "s.h5"), "--dry-run", *extra]

    return build


def raw_config(command: str, text: bytes | str, *extra: str) -> Callable:
    def build(folder: Path) -> list[str]:
        config = folder / "c.toml"
        if isinstance(text, str):
            config.write_text(text)
        else:
            config.write_bytes(text)
        if command == "sweep":
            return ["sweep", str(config), "--out", str(folder / "s.h5"), "--dry-run", *extra]
        return ["simulate", str(config), "-o", str(folder / "o.csv"), "--no-progress", *extra]

    return build


# ------------------------------------------------------------------ files beside a config
def with_files(files: dict[str, bytes | str], acquisition: dict, *extra: str) -> Callable:
    """``simulate`` whose [acquisition] is ``acquisition`` (file names relative to the
    config), with ``files`` written beside it."""

    def build(folder: Path) -> list[str]:
        for name, content in files.items():
            target = folder / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        data = copy.deepcopy(SIMULATE)
        data["acquisition"] = acquisition
        config = folder / "c.toml"
        config.write_text(toml(data))
        return ["simulate", str(config), "-o", str(folder / "o.csv"), "--no-progress", *extra]

    return build


FSL = {
    "sequence": "pgse",
    "pulse_duration_ms": 10.0,
    "pulse_separation_ms": 30.0,
    "bvals": "d.bval",
    "bvecs": "d.bvec",
}
GOOD_BVALS = "0 1000 1000 1000\n"
GOOD_BVECS = "0 1 0 0\n0 0 1 0\n0 0 0 1\n"


def fsl(bvals: str | bytes, bvecs: str | bytes, **changes) -> Callable:
    acquisition = {**FSL, **changes}
    return with_files({"d.bval": bvals, "d.bvec": bvecs}, acquisition)


def scheme(text: str | bytes) -> Callable:
    return with_files({"s.scheme": text}, {"sequence": "pgse", "scheme": "s.scheme"})


# ------------------------------------------------------------------------- mesh files
def _stl_binary(triangles: int, payload: int | None = None) -> bytes:
    header = b"\0" * 80 + int(triangles).to_bytes(4, "little")
    return header + b"\1" * (50 * triangles if payload is None else payload)


def _ply_ascii(vertices, faces) -> str:
    lines = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(vertices)}",
        "property float x",
        "property float y",
        "property float z",
        f"element face {len(faces)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    lines += [" ".join(str(c) for c in v) for v in vertices]
    lines += ["3 " + " ".join(str(i) for i in f) for f in faces]
    return "\n".join(lines) + "\n"


TETRA_V = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
TETRA_F = [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]


def mesh_check(name: str, content: bytes | str | None, *extra: str) -> Callable:
    def build(folder: Path) -> list[str]:
        target = folder / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif isinstance(content, str):
            target.write_text(content)
        return ["mesh", "check", str(target), "--unit", "um", *extra]

    return build


def cli(*argv: str) -> Callable:
    def build(folder: Path) -> list[str]:
        return [a.replace("{dir}", str(folder)) for a in argv]

    return build


def _then(file: tuple[str, str], build: Callable) -> Callable:
    """``build`` after writing ``file`` = (name, text) into the folder."""

    def run(folder: Path) -> list[str]:
        (folder / file[0]).write_text(file[1])
        return build(folder)

    return run


def _rng_bytes(seed: int, size: int) -> bytes:
    return np.random.default_rng(seed).bytes(size)


# ------------------------------------------------------------------------------ table
def _rows(prefix: str, rows, outcome: str = "error", **options) -> list[Case]:
    """Cases ``prefix-name`` of ``outcome`` from rows (name, build, *fragments)."""
    return [Case(f"{prefix}-{n}", build, outcome, tuple(f), **options) for n, build, *f in rows]


def _values(command: Callable, prefix: str, path: tuple, table) -> list[Case]:
    """One ``error`` case per (key, bad values, fragment) row: ``command`` with the key
    under ``path`` set to each value."""
    return [
        Case(f"{prefix}-{key}={value!r}", command((*path, key), value), "error", (fragment,))
        for key, values, fragment in table
        for value in values
    ]


MESH_CELL = {
    "name": "cell",
    "shape": "mesh",
    "path": "nothere.ply",
    "unit": "um",
    "length_scale_um": 2.0,
    "diffusivity_um2_per_ms": 2.0,
}
#: A sweep whose radius (2 cm) is impossible as a length, and the override.
BIG = _edit(SWEEP, ("geometry", 0, "radius_um"), [20000.0])
ALLOW_LENGTH = {"allow": ["length"]}


def _allowing(build: Callable, quantities: str) -> Callable:
    """``build``'s argv with ``--allow quantities``."""
    return lambda folder: [*build(folder), "--allow", quantities]


def _simulate_cases() -> list[Case]:
    axon = ("compartment", 0)
    acq = ("acquisition",)
    cases = _values(
        simulate,
        "simulate",
        axon,
        [
            ("radius_um", [-1.0, 0.0, "big", math.nan, math.inf, True], "radius"),
            ("diffusivity_um2_per_ms", [-2.0, 0.0, "fast", math.nan, math.inf], "diffusivity"),
            ("signal_fraction", [1.5, -0.1, "most", math.nan], "fraction"),
            ("axis", [[0.0, 0.0, 0.0], [1.0, 2.0], "z", [math.nan, 0.0, 1.0]], "axis"),
            ("shape", ["cube", 3, ""], "shape"),
            ("t2_ms", [-5.0, 0.0, "long", math.nan], "t2"),
        ],
    )
    cases += _values(
        simulate,
        "simulate",
        acq,
        [
            ("pulse_duration_ms", [-10.0, 0.0, "short", math.nan, 100.0], "pulse_duration"),
            ("pulse_separation_ms", [-1.0, 5.0, "x", math.inf], "pulse_separation"),
            ("b_s_per_mm2", [[-1000.0], [], "many", [math.nan], [0, "x"]], "b_s_per_mm2"),
            (
                "directions",
                ["lots", 0, -3, 2.5, [[0.0, 0.0, 0.0]], [[1.0, 2.0]], {"electrostatic": "x"}, True],
                "directions",
            ),
            ("sequence", ["trapezoid", 1], "sequence"),
        ],
    )
    radius, b = (*axon, "radius_um"), (*acq, "b_s_per_mm2")
    config = ("c.toml", toml(SIMULATE))
    cases += _rows(
        "simulate",
        [
            ("radius-missing", simulate(radius, _DELETE), "radius"),
            ("radius-no-unit", simulate((*axon, "radius"), 3e-6), "radius"),
            ("radius-wrong-unit", simulate((*axon, "radius_furlong"), 3.0), "radius_furlong"),
            ("unknown-compartment-key", simulate((*axon, "colour"), "red"), "colour"),
            ("name-empty", simulate((*axon, "name"), ""), "name"),
            ("name-number", simulate((*axon, "name"), 5), "name"),
            ("duplicate-name", simulate(("compartment", 1, "name"), "axon"), "axon"),
            ("no-compartment", simulate(("compartment",), _DELETE), "compartment"),
            ("no-acquisition", simulate(acq, _DELETE), "acquisition"),
            ("unknown-section", simulate(("phantomm",), {"a": 1}), "phantomm"),
            ("mesh-file-missing", simulate(axon, MESH_CELL), "nothere.ply"),
            (
                "mesh-element-order",
                simulate(axon, {**MESH_CELL, "element_order": 3}),
                "element_order must be 1 (P1) or 2",
            ),
            ("acquisition-unknown-key", simulate((*acq, "flip_angle"), 90), "flip_angle"),
            ("acquisition-no-b", simulate(b, _DELETE), "acquisition"),
            ("b-wrong-unit", _renamed(b, "b_furlong"), "b_furlong"),
            ("output-suffix", simulate((), None, output="out.txt"), "out.txt"),
            (
                "output-exists",
                _then(("out.csv", "x"), simulate((), None)),
                "out.csv",
                "--overwrite",
            ),
            ("config-missing", cli("simulate", "{dir}/none.toml"), "none.toml"),
            ("config-folder", cli("simulate", "{dir}"), "Is a directory"),
            ("no-output", _then(config, cli("simulate", "{dir}/c.toml")), "-o"),
            ("checks-unknown", simulate(("checks",), {"allow": ["radius"]}), "[checks]", "radius"),
            ("toml-binary", raw_config("simulate", _rng_bytes(1, 300)), "c.toml"),
            ("toml-latin1", raw_config("simulate", "# caf\xe9\n".encode("latin-1")), "c.toml"),
        ],
    )
    cases += _rows(
        "simulate",
        [
            ("unknown-flag", cli("simulate", "x.toml", "--fast"), "--fast"),
            ("no-config", cli("simulate"), "config"),
            ("allow-unknown", simulate((), None, "--allow", "radius"), "--allow", "radius"),
            ("allow-empty", simulate((), None, "--allow", ","), "--allow"),
        ],
        "usage",
    )
    cases += _rows("simulate", [("radius-list-is-voxels", simulate(radius, [1.0, 2.0]))], "handled")
    raw = [
        ("[[compartment]\nname = 1", "TOML"),
        ("radius_um = = 3", "TOML"),
        ("", "compartment"),
        ("# only a comment\n", "compartment"),
        ('[compartment]\nname = "a"', "acquisition"),
        ("acquisition = 3\n[[compartment]]\nname='a'", "shape"),
    ]
    cases += [
        Case(f"simulate-toml-text-{i}", raw_config("simulate", text), "error", (fragment,))
        for i, (text, fragment) in enumerate(raw)
    ]
    return cases


def _gradient_file_cases() -> list[Case]:
    pairs = [
        ("0 1000 x 1000\n", GOOD_BVECS, "d.bval"),
        ("0 1000 1000\n", GOOD_BVECS, "d.bval"),
        (GOOD_BVALS, "0 1 0 0\n0 0 1 0\n", "d.bvec"),
        (GOOD_BVALS, "0 1 0\n0 0 1\n0 0 0\n", "d.bvec"),
        ("0 -1000 1000 1000\n", GOOD_BVECS, "d.bval"),
        (GOOD_BVALS, "0 0 0 0\n0 0 1 0\n0 0 0 1\n", "d.bvec"),
        ("", GOOD_BVECS, "d.bval"),
        (GOOD_BVALS, "", "d.bvec"),
        ("0 nan 1000 1000\n", GOOD_BVECS, "d.bval"),
        (GOOD_BVALS, "0 1 0 0\n0 0 1 0\n0 0 0 inf\n", "d.bvec"),
        (_rng_bytes(2, 200), GOOD_BVECS, "d.bval"),
        (GOOD_BVALS, _rng_bytes(3, 200), "d.bvec"),
        ("0 1000 1000 1000\n0 1000 1000 1000\n", GOOD_BVECS, "d.bval"),
        (GOOD_BVALS, "0 2 0 0\n0 0 1 0\n0 0 0 1\n", "d.bvec"),
    ]
    cases = [Case(f"fsl-{i}", fsl(v, d), "error", (f,)) for i, (v, d, f) in enumerate(pairs)]
    bvals_only = {k: v for k, v in FSL.items() if k != "bvecs"}
    ms_um2 = fsl("0 1 1 1\n", GOOD_BVECS)  # b-values in ms/um^2 read as s/mm^2
    timing = {k: FSL[k] for k in ("sequence", "pulse_duration_ms", "pulse_separation_ms")}
    table = {**timing, "gradient_table": "g.b"}
    mrtrix = with_files({"g.b": "0 0 1 0\n1 0 0 2\n0 1 0 2\n"}, table)
    good_mrtrix = {"g.b": "0 0 1 0\n1 0 0 1000\n0 1 0 1000\n", "s.json": "{}"}
    mrtrix_sidecar = with_files(good_mrtrix, {**table, "sidecar": "s.json"})
    cases += _rows(
        "fsl",
        [
            ("bvecs-missing-file", with_files({"d.bval": GOOD_BVALS}, FSL), "d.bvec"),
            ("bvals-without-bvecs", with_files({"d.bval": GOOD_BVALS}, bvals_only), "bvecs"),
            ("and-b-values", fsl(GOOD_BVALS, GOOD_BVECS, b_s_per_mm2=[0, 1000]), "b_s_per_mm2"),
            ("bvals-in-ms-per-um2", ms_um2, "bvals", "ms/um^2", "--allow bvalue"),
            ("bvals-in-s-per-m2", fsl("0 1e9 1e9 1e9\n", GOOD_BVECS), "bvals", "s/m^2", "bvalue"),
            ("mrtrix-b-in-ms-per-um2", mrtrix, "gradient_table", "ms/um^2", "--allow bvalue"),
            ("mrtrix-with-sidecar", mrtrix_sidecar, "sidecar", "gradient_table"),
        ],
    )
    cases += _rows(
        "fsl",
        [
            ("bvals-in-ms-per-um2-allowed", _allowing(ms_um2, "bvalue")),
            ("valid", fsl(GOOD_BVALS, GOOD_BVECS)),
        ],
        "handled",
    )
    texts = [
        "VERSION: STEJSKALTANNER\n1 0 0 0.04 0.01 0.03\n",
        "VERSION: STEJSKALTANNER\n1 0 0 x 0.01 0.03 0.08\n",
        "VERSION: BVECTOR\n",
        "VERSION: STEJSKALTANNER\n1 0 0 0.04 0.01 0.03 0.08\n",
        "VERSION: STEJSKALTANNER\n1 0 0 -0.04 0.03 0.01 0.08\n",
        "",
    ]
    cases += [Case(f"scheme-{i}", scheme(t), "error", ("scheme",)) for i, t in enumerate(texts)]
    valid = scheme("VERSION: STEJSKALTANNER\n1 0 0 0.04 0.04 0.03 0.08\n")
    cases += _rows("scheme", [("valid", valid)], "handled")
    bvector = scheme("VERSION: BVECTOR\n0 0 1 0\n1 0 0 1000\n")  # s/mm^2 in an SI file
    cases += _rows(
        "scheme",
        [
            ("binary", scheme(_rng_bytes(4, 300)), "s.scheme"),
            ("bvector-in-s-per-mm2", bvector, "scheme", "1000 s/mm^2", "--allow bvalue"),
        ],
    )
    return cases


def _sweep_config_cases() -> list[Case]:
    """Sweep configs (``--dry-run`` validates the whole plan) and flags."""
    cases = _values(
        sweep,
        "sweep",
        ("geometry", 0),
        [
            (
                "radius_um",
                [
                    -1.0,
                    0.0,
                    "big",
                    [],
                    {"grid": [1.0, 2.0], "num": 0},
                    {"log_uniform": [-1.0, 2.0], "num": 3},
                    {"grid": [2.0, 1.0]},
                ],
                "radius",
            ),
            ("shape", ["cube", 3], "shape"),
            ("length_scale_um", [-1.0, 0.0, "fine"], "length_scale"),
            ("axis", [[0.0, 0.0, 0.0], "z"], "axis"),
            ("files", [["none.ply"]], "files"),
        ],
    )
    top = [
        ("chunk_rows", 0),
        ("chunk_rows", -4),
        ("chunk_rows", "many"),
        ("seed", "x"),
        ("tissue", _DELETE),
        ("geometry", _DELETE),
        ("acquisition", _DELETE),
        ("unknown_top", 3),
    ]
    cases += [
        Case(
            f"sweep-{key}={'missing' if value is _DELETE else value}",
            sweep((key,), value),
            "error",
            (key,),
        )
        for key, value in top
    ]
    tissue = [
        ("diffusivity_um2_per_ms", [-1.0], "diffusivity"),
        ("diffusivity_um2_per_ms", "fast", "diffusivity"),
        ("diffusivity_um2_per_ms", {"uniform": [3.0, 1.0], "num": 3}, "diffusivity"),
        ("t2_ms", [0.0], "t2"),
        ("t2", [0.05], "t2"),
        ("viscosity", [1.0], "viscosity"),
        ("volume_fraction", [-0.2], "volume_fraction"),
    ]
    cases += [
        Case(f"sweep-tissue-{key}={value!r}", sweep(("tissue", key), value), "error", (fragment,))
        for key, value, fragment in tissue
    ]
    acquisition = [
        ("directions", "lots", "directions"),
        ("directions", 0, "directions"),
        ("pulse_duration_ms", -1.0, "pulse_duration"),
        ("pulse_separation_ms", 5.0, "pulse_separation"),
        ("b_s_per_mm2", [-5.0], "b"),
        ("sequence", "spin-echo", "sequence"),
        ("timings_combine", "cross", "timings_combine"),
    ]
    cases += [
        Case(f"sweep-acq-{key}={value!r}", sweep(("acquisition", 0, key), value), "error", (f,))
        for key, value, f in acquisition
    ]
    strict = {**ALLOW_LENGTH, "strict": True}
    cases += _rows(
        "sweep",
        [
            ("toml-binary", raw_config("sweep", _rng_bytes(5, 300)), "c.toml"),
            ("toml-broken", raw_config("sweep", "[[geometry]\nshape="), "TOML"),
            ("radius-2cm", _sweep_data(BIG), "radius_um", "--allow length"),
            ("checks-unknown-key", sweep(("checks",), strict), "[checks]", "strict"),
            ("device-gpu0", sweep((), None, "--device", "gpu0"), "gpu0", "cuda"),
            ("device-empty", sweep((), None, "--device", ""), "device"),
            ("device-tpu", sweep((), None, "--device", "xla"), "xla"),
            ("device-cuda-7", sweep((), None, "--device", "cuda:7"), "cuda"),
            ("table-suffix-early", sweep((), None, "--table", "t.xlsx"), "--table", "xlsx"),
            ("config-missing", cli("sweep", "{dir}/none.toml"), "none.toml"),
        ],
    )
    cases += _rows(
        "sweep",
        [
            ("allow-unknown", sweep((), None, "--allow", "size"), "--allow", "size"),
            ("ray-workers-text", sweep((), None, "--ray-workers", "two"), "--ray-workers"),
            ("ray-workers-zero", sweep((), None, "--ray-workers", "0"), "--ray-workers"),
            ("unknown-flag", sweep((), None, "--gpu"), "--gpu"),
        ],
        "usage",
    )
    cases += _rows(
        "sweep",
        [
            ("valid-dry-run", sweep((), None)),
            ("radius-2cm-allowed", _sweep_data(BIG, "--allow", "length")),
            ("radius-2cm-checks", _sweep_data(_edit(BIG, ("checks",), ALLOW_LENGTH))),
        ],
        "handled",
    )
    return cases


def _sweep_run_cases() -> list[Case]:
    """Sweep runs: outputs, resume, stored results and caches (slow)."""
    cases = _rows(
        "sweep",
        [
            ("output-exists", _sweep_run(exists=True), "s.h5", "--resume"),
            ("resume-changed-config", _sweep_resume_changed(), "different sweep configuration"),
            ("table-suffix", _sweep_run(table="t.xlsx"), "xlsx"),
        ],
        slow=True,
    )
    damaged = [("resume-damaged-output", _sweep_damaged_output(), "s.h5")]
    cases += _rows("sweep", damaged, code=3, slow=True)
    caches = [
        (f"damaged-cache-{how}", _sweep_damaged_cache(how), "unusable sweep cache file")
        for how in ("truncate", "flip", "empty", "swap")
    ]
    shards = [
        (f"damaged-shard-{how}", _sweep_damaged_shard(how), "computing chunk")
        for how in ("truncate", "flip", "swap")
    ]
    return cases + _rows("sweep", caches + shards, "recomputed", slow=True)


def _mesh_cases() -> list[Case]:
    files = [
        ("g.stl", _rng_bytes(6, 3000), "not an STL file"),
        ("t.stl", _stl_binary(10, payload=120), "not an STL file"),
        ("e.stl", b"", "empty"),
        ("h.stl", b"\0" * 50, "not an STL file"),
        ("a.stl", "solid x\n facet normal 0 0 1\n outer loop\n vertex 0 0 0\n", "a.stl"),
        ("g.ply", _rng_bytes(7, 2000), "g.ply"),
        ("e.ply", b"", "e.ply"),
        ("h.ply", "ply\nformat ascii 1.0\nelement vertex 4\n", "h.ply"),
        ("n.ply", _ply_ascii([[0, 0, 0], [1, 0, 0], ["nan", 1, 0], [0, 0, 1]], TETRA_F), "NaN"),
        ("p.ply", _ply_ascii(TETRA_V, []), "no triangle faces"),
        ("i.ply", _ply_ascii(TETRA_V, [[0, 2, 1], [0, 1, 9]]), "i.ply"),
        ("g.obj", _rng_bytes(8, 2000), "g.obj"),
        ("t.obj", "this is not a mesh\n", "t.obj"),
        ("g.off", "OFF\n3 1\n", "g.off"),
        ("g.vtk", _rng_bytes(9, 500), "g.vtk"),
        ("g.glb", _rng_bytes(10, 500), "g.glb"),
        ("m.xyz", "0 0 0\n", ".xyz"),
        ("noext", "0 0 0\n", "unsupported mesh format"),
    ]
    cases = _rows("mesh", [(name, mesh_check(name, content), f) for name, content, f in files])
    unit_tetra = _ply_ascii(TETRA_V, TETRA_F)
    flipped = _ply_ascii(TETRA_V, [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 3, 2]])
    two = _ply_ascii(
        TETRA_V + [[5 + x for x in v] for v in TETRA_V],
        TETRA_F + [[i + 4 for i in f] for f in TETRA_F],
    )
    tetra = ("v.ply", _ply_ascii([[5 * x for x in v] for v in TETRA_V], TETRA_F))
    repair = cli("mesh", "repair", "{dir}/v.ply", "{dir}/r.txt", "--unit", "um")
    cases += _rows(
        "mesh",
        [
            ("missing", mesh_check("none.ply", None), "none.ply"),
            ("repair-output-suffix", _then(tetra, repair), "r.txt"),
        ],
    )
    cases += _rows(
        "mesh",
        [
            ("open-surface", mesh_check("o.ply", _ply_ascii(TETRA_V, TETRA_F[:3])), "open"),
            ("flipped-face", mesh_check("f.ply", flipped), "winding"),
            ("two-bodies", mesh_check("b.ply", two), "bodies"),
            ("tiny-unit", mesh_check("u.ply", unit_tetra, "--unit", "m"), "extent"),
        ],
        "report",
    )
    units = [
        (f"unit-{unit or 'empty'}", mesh_check("v.ply", unit_tetra, "--unit", unit), "--unit")
        for unit in ("furlong", "-1", "0", "nan", "")
    ]
    no_unit = ("no-unit", _then(tetra, cli("mesh", "check", "{dir}/v.ply")), "--unit")
    cases += _rows("mesh", [*units, no_unit], "usage")
    return cases + _rows("mesh", [("valid", mesh_check(*tetra))], "handled")


def _fit_cases() -> list[Case]:
    missing = cli("fit", "--data", "{dir}/none.csv", "-o", "{dir}/f.json")
    errors = [
        ("no-data", cli("fit", "-o", "{dir}/f.json"), "--data"),
        ("data-missing", missing, "none.csv"),
    ]
    for flag, value, fragment in [
        ("--axis", "1,2", "axis"),
        ("--axis", "x,y,z", "axis"),
        ("--axis", "0,0,0", "axis"),
        ("--fix", "radius", "radius"),
        ("--fix", "radius_um=abc", "radius"),
        ("--fix", "colour=3", "colour"),
    ]:
        errors.append((f"flag{flag}={value}", _fit(flag, value), fragment))
    header = "b_s_per_mm2,direction_x,direction_y,direction_z"
    for i, (text, fragment) in enumerate(
        [
            (f"{header}\n0,0,0,1\n", "signal"),
            (f"{header},signal\n0,0,0,1,x\n", "f.csv"),
            ("", "f.csv"),
            (f"{header},signal\n-5,0,0,1,1\n", "b"),
        ]
    ):
        errors.append((f"data-{i}", _fit_data(text), fragment))
    usage = [("no-output", cli("fit", "--data", "x.csv"), "-o")]
    for flag, value in [
        ("--model", "cube"),
        ("--extra", "stick"),
        ("--seed", "x"),
        ("--engine", "gpu"),
        ("--likelihood", "poisson"),
        ("--sigma", "-1"),
        ("--starts", "0"),
        ("--bootstrap", "-1"),
        ("--unit-cutoff", "-1"),
        ("--pulse-duration-ms", "-10"),
        ("--sigma", "nan"),
    ]:
        usage.append((f"usage{flag}={value}", _fit(flag, value), flag))
    return _rows("fit", errors) + _rows("fit", usage, "usage")


def _cases() -> list[Case]:
    usage = [
        ("unknown-command", cli("simulat"), "simulat"),
        ("unknown-top-flag", cli("--colour"), "--colour"),
    ]
    return (
        _simulate_cases()
        + _gradient_file_cases()
        + _sweep_config_cases()
        + _sweep_run_cases()
        + _mesh_cases()
        + _fit_cases()
        + _rows("cli", usage, "usage")
        + _rows("cli", [("no-command", cli())], "handled", code=2)
        + _rows("cli", [("version", cli("--version"))], "handled")
    )


def _renamed(path: tuple, new_key: str) -> Callable:
    """``simulate`` with the key at ``path`` renamed to ``new_key`` (same value)."""

    def build(folder: Path) -> list[str]:
        data = copy.deepcopy(SIMULATE)
        section = data
        for key in path[:-1]:
            section = section[key]
        section[new_key] = section.pop(path[-1])
        config = folder / "c.toml"
        config.write_text(toml(data))
        return ["simulate", str(config), "-o", str(folder / "out.csv"), "--no-progress"]

    return build


def _fit(flag: str, value: str) -> Callable:
    def build(folder: Path) -> list[str]:
        data = folder / "f.csv"
        rows = ["b_s_per_mm2,direction_x,direction_y,direction_z,signal"]
        for b, direction, s in [
            (0, (0, 0, 1), 1.0),
            (1000, (1, 0, 0), 0.6),
            (1000, (0, 1, 0), 0.6),
            (1000, (0, 0, 1), 0.3),
            (3000, (1, 0, 0), 0.3),
            (3000, (0, 0, 1), 0.05),
        ]:
            rows.append(f"{b},{direction[0]},{direction[1]},{direction[2]},{s}")
        data.write_text("\n".join(rows) + "\n")
        return [
            "fit",
            "--data",
            str(data),
            "--pulse-duration-ms",
            "10",
            "--pulse-separation-ms",
            "30",
            "--axis",
            "0,0,1",
            "--no-progress",
            "-o",
            str(folder / "f.json"),
            flag,
            value,
        ]

    return build


def _fit_data(text: str) -> Callable:
    def build(folder: Path) -> list[str]:
        (folder / "f.csv").write_text(text)
        return [
            "fit",
            "--data",
            str(folder / "f.csv"),
            "--pulse-duration-ms",
            "10",
            "--pulse-separation-ms",
            "30",
            "--axis",
            "0,0,1",
            "--no-progress",
            "-o",
            str(folder / "f.json"),
        ]

    return build


# -------------------------------------------------------------------- sweep run cases
def _write_sweep(folder: Path) -> Path:
    config = folder / "s.toml"
    config.write_text(toml(SWEEP))
    return config


def _run_sweep(folder: Path, *extra: str) -> int:
    from mf_dmri.cli.main import main

    config = folder / "s.toml"
    return main(["sweep", str(config), "--out", str(folder / "s.h5"), "--no-progress", *extra])


def _sweep_run(*, exists: bool = False, table: str | None = None) -> Callable:
    def build(folder: Path) -> list[str]:
        config = _write_sweep(folder)
        if exists:
            (folder / "s.h5").write_bytes(b"old")
        argv = ["sweep", str(config), "--out", str(folder / "s.h5"), "--no-progress"]
        return argv + (["--table", str(folder / table)] if table else [])

    return build


def _sweep_resume_changed() -> Callable:
    def build(folder: Path) -> list[str]:
        _write_sweep(folder)
        assert _run_sweep(folder) == 0
        changed = _edit(SWEEP, ("tissue", "diffusivity_um2_per_ms"), [1.0, 3.0])
        (folder / "s.toml").write_text(toml(changed))
        return [
            "sweep",
            str(folder / "s.toml"),
            "--out",
            str(folder / "s.h5"),
            "--resume",
            "--no-progress",
        ]

    return build


def _sweep_damaged_output() -> Callable:
    def build(folder: Path) -> list[str]:
        _write_sweep(folder)
        assert _run_sweep(folder) == 0
        path = folder / "s.h5"
        path.write_bytes(path.read_bytes()[:2000])
        return ["sweep", str(folder / "s.toml"), "--out", str(path), "--resume", "--no-progress"]

    return build


def _equal_to_fresh(folder: Path) -> None:
    from mf_dmri.io.sweep_store import read_sweep

    fresh = folder / "fresh"
    fresh.mkdir()
    _write_sweep(fresh)
    assert _run_sweep(fresh) == 0
    np.testing.assert_array_equal(
        read_sweep(folder / "s.h5").signals, read_sweep(fresh / "s.h5").signals
    )


def _sweep_damaged_cache(how: str) -> Callable:
    def build(folder: Path) -> list[str]:
        _write_sweep(folder)
        cache = folder / "cache"
        assert _run_sweep(folder, "--cache-dir", str(cache)) == 0
        (folder / "s.h5").unlink()
        files = sorted(cache.glob("*.pt"))
        damage(files[0], how, np.random.default_rng(DAMAGE_SEED), other=files[1])
        return [
            "sweep",
            str(folder / "s.toml"),
            "--out",
            str(folder / "s.h5"),
            "--cache-dir",
            str(cache),
            "--no-progress",
        ]

    return build


def _sweep_damaged_shard(how: str) -> Callable:
    def build(folder: Path) -> list[str]:
        from mf_dmri.io.sweep_store import SweepStore
        from mf_dmri.io.sweep_toml import default_registry, load_sweep_toml
        from mf_dmri.sweep import build_plan, run_sweep

        _write_sweep(folder)  # every chunk stored as a shard, not merged (as if killed)
        registry = default_registry()
        plan = build_plan(load_sweep_toml(folder / "s.toml", registry=registry), registry)
        store = SweepStore(folder / "s.h5", plan)
        run_sweep(plan, store, registry=registry)
        shards = sorted((folder / "s.h5.parts").glob("chunk_*.npz"))
        damage(shards[0], how, np.random.default_rng(DAMAGE_SEED), other=shards[1])
        return [
            "sweep",
            str(folder / "s.toml"),
            "--out",
            str(folder / "s.h5"),
            "--resume",
            "--no-progress",
        ]

    return build


CASES: list[Case] = _cases()
RECOMPUTED_CHECK = _equal_to_fresh


def counts() -> Counter:
    """Cases per outcome class."""
    return Counter(case.outcome for case in CASES)


def count_table() -> str:
    """The Markdown table of docs/errors.md between its markers."""
    total = counts()
    lines = ["| outcome | cases |", "|---|---|"]
    lines += [f"| {name} | {total[name]} |" for name in OUTCOMES]
    lines.append(f"| **all** | **{sum(total.values())}** |")
    return "\n".join(lines)


BEGIN, END = "<!-- bad-input counts: begin -->", "<!-- bad-input counts: end -->"


def docs_with_table(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(BEGIN + "\n" + count_table() + "\n" + END, text)


if __name__ == "__main__":
    DOCS.write_text(docs_with_table(DOCS.read_text()))
    print(count_table())
