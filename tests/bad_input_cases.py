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

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "errors.md"
OUTCOMES = ("error", "usage", "report", "recomputed", "handled")


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(folder)`` writes its files and returns the argv."""

    id: str
    build: Callable[[Path], list[str]]
    outcome: str
    fragments: tuple[str, ...] = ()
    code: int | None = None  # expected exit code when not the outcome's default
    slow: bool = False
    pending: str = ""  # the branch that owns the check, while it is not merged
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

    def build(folder: Path) -> list[str]:
        config = folder / "s.toml"
        config.write_text(toml(_edit(SWEEP, path, value) if path else SWEEP))
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
def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    axon = ("compartment", 0)
    acq = ("acquisition",)

    # simulate: compartment values (18 keys x values)
    for key, values, fragment in [
        ("radius_um", [-1.0, 0.0, "big", math.nan, math.inf, True], "radius"),
        ("diffusivity_um2_per_ms", [-2.0, 0.0, "fast", math.nan, math.inf], "diffusivity"),
        ("signal_fraction", [1.5, -0.1, "most", math.nan], "fraction"),
        ("axis", [[0.0, 0.0, 0.0], [1.0, 2.0], "z", [math.nan, 0.0, 1.0]], "axis"),
        ("shape", ["cube", 3, ""], "shape"),
        ("t2_ms", [-5.0, 0.0, "long", math.nan], "t2"),
    ]:
        for value in values:
            add(
                Case(
                    f"simulate-{key}={value!r}", simulate((*axon, key), value), "error", (fragment,)
                )
            )
    add(
        Case(
            "simulate-radius-list-is-voxels", simulate((*axon, "radius_um"), [1.0, 2.0]), "handled"
        )
    )
    add(
        Case(
            "simulate-radius-missing", simulate((*axon, "radius_um"), _DELETE), "error", ("radius",)
        )
    )
    add(Case("simulate-radius-no-unit", simulate((*axon, "radius"), 3e-6), "error", ("radius",)))
    add(
        Case(
            "simulate-radius-wrong-unit",
            simulate((*axon, "radius_furlong"), 3.0),
            "error",
            ("radius_furlong",),
        )
    )
    add(
        Case(
            "simulate-unknown-compartment-key",
            simulate((*axon, "colour"), "red"),
            "error",
            ("colour",),
        )
    )
    add(Case("simulate-name-empty", simulate((*axon, "name"), ""), "error", ("name",)))
    add(Case("simulate-name-number", simulate((*axon, "name"), 5), "error", ("name",)))
    add(
        Case(
            "simulate-duplicate-name",
            simulate(("compartment", 1, "name"), "axon"),
            "error",
            ("axon",),
        )
    )
    add(
        Case(
            "simulate-no-compartment",
            simulate(("compartment",), _DELETE),
            "error",
            ("compartment",),
        )
    )
    add(
        Case(
            "simulate-no-acquisition",
            simulate(("acquisition",), _DELETE),
            "error",
            ("acquisition",),
        )
    )
    add(Case("simulate-unknown-section", simulate(("phantomm",), {"a": 1}), "error", ("phantomm",)))
    add(
        Case(
            "simulate-mesh-file-missing",
            simulate(
                ("compartment", 0),
                {
                    "name": "cell",
                    "shape": "mesh",
                    "path": "nothere.ply",
                    "unit": "um",
                    "length_scale_um": 2.0,
                    "diffusivity_um2_per_ms": 2.0,
                },
            ),
            "error",
            ("nothere.ply",),
        )
    )
    # simulate: acquisition values
    for key, values, fragment in [
        ("pulse_duration_ms", [-10.0, 0.0, "short", math.nan, 100.0], "pulse_duration"),
        ("pulse_separation_ms", [-1.0, 5.0, "x", math.inf], "pulse_separation"),
        ("b_s_per_mm2", [[-1000.0], [], "many", [math.nan], [0, "x"]], "b_s_per_mm2"),
        (
            "directions",
            ["lots", 0, -3, 2.5, [[0.0, 0.0, 0.0]], [[1.0, 2.0]], {"electrostatic": "x"}, True],
            "directions",
        ),
        ("sequence", ["trapezoid", 1], "sequence"),
    ]:
        for value in values:
            add(
                Case(
                    f"simulate-{key}={value!r}", simulate((*acq, key), value), "error", (fragment,)
                )
            )
    add(
        Case(
            "simulate-acquisition-unknown-key",
            simulate((*acq, "flip_angle"), 90),
            "error",
            ("flip_angle",),
        )
    )
    add(
        Case(
            "simulate-acquisition-no-b",
            simulate((*acq, "b_s_per_mm2"), _DELETE),
            "error",
            ("acquisition",),
        )
    )
    add(
        Case(
            "simulate-b-wrong-unit",
            _renamed(("acquisition", "b_s_per_mm2"), "b_furlong"),
            "error",
            ("b_furlong",),
        )
    )
    # simulate: output and flags
    add(Case("simulate-output-suffix", simulate((), None, output="out.txt"), "error", ("out.txt",)))
    add(
        Case(
            "simulate-output-exists",
            _then(("out.csv", "x"), simulate((), None)),
            "error",
            ("out.csv", "--overwrite"),
        )
    )
    add(
        Case("simulate-config-missing", cli("simulate", "{dir}/none.toml"), "error", ("none.toml",))
    )
    add(Case("simulate-config-folder", cli("simulate", "{dir}"), "error", ("Is a directory",)))
    add(
        Case(
            "simulate-no-output",
            _then(("c.toml", toml(SIMULATE)), cli("simulate", "{dir}/c.toml")),
            "error",
            ("-o",),
        )
    )
    add(Case("simulate-unknown-flag", cli("simulate", "x.toml", "--fast"), "usage", ("--fast",)))
    add(Case("simulate-no-config", cli("simulate"), "usage", ("config",)))
    # raw config text
    for i, (text, fragment) in enumerate(
        [
            ("[[compartment]\nname = 1", "TOML"),
            ("radius_um = = 3", "TOML"),
            ("", "compartment"),
            ("# only a comment\n", "compartment"),
            ('[compartment]\nname = "a"', "acquisition"),
            ("acquisition = 3\n[[compartment]]\nname='a'", "shape"),
        ]
    ):
        add(Case(f"simulate-toml-text-{i}", raw_config("simulate", text), "error", (fragment,)))
    add(
        Case(
            "simulate-toml-binary", raw_config("simulate", _rng_bytes(1, 300)), "error", ("c.toml",)
        )
    )
    add(
        Case(
            "simulate-toml-latin1",
            raw_config("simulate", "# caf\xe9\n".encode("latin-1")),
            "error",
            ("c.toml",),
        )
    )

    # bvals / bvecs / scheme files
    for i, (bvals, bvecs, fragments) in enumerate(
        [
            ("0 1000 x 1000\n", GOOD_BVECS, ("d.bval",)),
            ("0 1000 1000\n", GOOD_BVECS, ("d.bval",)),
            (GOOD_BVALS, "0 1 0 0\n0 0 1 0\n", ("d.bvec",)),
            (GOOD_BVALS, "0 1 0\n0 0 1\n0 0 0\n", ("d.bvec",)),
            ("0 -1000 1000 1000\n", GOOD_BVECS, ("d.bval",)),
            (GOOD_BVALS, "0 0 0 0\n0 0 1 0\n0 0 0 1\n", ("d.bvec",)),
            ("", GOOD_BVECS, ("d.bval",)),
            (GOOD_BVALS, "", ("d.bvec",)),
            ("0 nan 1000 1000\n", GOOD_BVECS, ("d.bval",)),
            (GOOD_BVALS, "0 1 0 0\n0 0 1 0\n0 0 0 inf\n", ("d.bvec",)),
            (_rng_bytes(2, 200), GOOD_BVECS, ("d.bval",)),
            (GOOD_BVALS, _rng_bytes(3, 200), ("d.bvec",)),
            ("0 1000 1000 1000\n0 1000 1000 1000\n", GOOD_BVECS, ("d.bval",)),
            (GOOD_BVALS, "0 2 0 0\n0 0 1 0\n0 0 0 1\n", ("d.bvec",)),
        ]
    ):
        add(Case(f"fsl-{i}", fsl(bvals, bvecs), "error", fragments))
    add(
        Case(
            "fsl-bvecs-missing-file", with_files({"d.bval": GOOD_BVALS}, FSL), "error", ("d.bvec",)
        )
    )
    add(
        Case(
            "fsl-bvals-without-bvecs",
            with_files({"d.bval": GOOD_BVALS}, {k: v for k, v in FSL.items() if k != "bvecs"}),
            "error",
            ("bvecs",),
        )
    )
    add(
        Case(
            "fsl-and-b-values",
            fsl(GOOD_BVALS, GOOD_BVECS, b_s_per_mm2=[0, 1000]),
            "error",
            ("b_s_per_mm2",),
        )
    )
    add(Case("fsl-bvals-in-ms-per-um2", fsl("0 1 1 1\n", GOOD_BVECS), "error", ("d.bval",)))
    add(Case("fsl-valid", fsl(GOOD_BVALS, GOOD_BVECS), "handled"))
    for i, text in enumerate(
        [
            "VERSION: STEJSKALTANNER\n1 0 0 0.04 0.01 0.03\n",
            "VERSION: STEJSKALTANNER\n1 0 0 x 0.01 0.03 0.08\n",
            "VERSION: BVECTOR\n",
            "VERSION: STEJSKALTANNER\n1 0 0 0.04 0.01 0.03 0.08\n",
            "VERSION: STEJSKALTANNER\n1 0 0 -0.04 0.03 0.01 0.08\n",
            "",
        ]
    ):
        add(Case(f"scheme-{i}", scheme(text), "error", ("scheme",)))
    add(
        Case(
            "scheme-valid",
            scheme("VERSION: STEJSKALTANNER\n1 0 0 0.04 0.04 0.03 0.08\n"),
            "handled",
        )
    )
    add(Case("scheme-binary", scheme(_rng_bytes(4, 300)), "error", ("s.scheme",)))

    # sweep configs (--dry-run validates the whole plan)
    geo = ("geometry", 0)
    for key, values, fragment in [
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
    ]:
        for value in values:
            add(Case(f"sweep-{key}={value!r}", sweep((*geo, key), value), "error", (fragment,)))
    for key, value, fragment in [
        ("chunk_rows", 0, "chunk_rows"),
        ("chunk_rows", -4, "chunk_rows"),
        ("chunk_rows", "many", "chunk_rows"),
        ("seed", "x", "seed"),
        ("tissue", _DELETE, "tissue"),
        ("geometry", _DELETE, "geometry"),
        ("acquisition", _DELETE, "acquisition"),
        ("unknown_top", 3, "unknown_top"),
    ]:
        add(
            Case(
                f"sweep-{key}={value if value is not _DELETE else 'missing'}",
                sweep((key,), value),
                "error",
                (fragment,),
            )
        )
    for key, value, fragment in [
        ("diffusivity_um2_per_ms", [-1.0], "diffusivity"),
        ("diffusivity_um2_per_ms", "fast", "diffusivity"),
        ("diffusivity_um2_per_ms", {"uniform": [3.0, 1.0], "num": 3}, "diffusivity"),
        ("t2_ms", [0.0], "t2"),
        ("t2", [0.05], "t2"),
        ("viscosity", [1.0], "viscosity"),
    ]:
        add(
            Case(
                f"sweep-tissue-{key}={value!r}", sweep(("tissue", key), value), "error", (fragment,)
            )
        )
    for key, value, fragment in [
        ("directions", "lots", "directions"),
        ("directions", 0, "directions"),
        ("pulse_duration_ms", -1.0, "pulse_duration"),
        ("pulse_separation_ms", 5.0, "pulse_separation"),
        ("b_s_per_mm2", [-5.0], "b"),
        ("sequence", "spin-echo", "sequence"),
        ("timings_combine", "cross", "timings_combine"),
    ]:
        add(
            Case(
                f"sweep-acq-{key}={value!r}",
                sweep(("acquisition", 0, key), value),
                "error",
                (fragment,),
            )
        )
    add(Case("sweep-toml-binary", raw_config("sweep", _rng_bytes(5, 300)), "error", ("c.toml",)))
    add(Case("sweep-toml-broken", raw_config("sweep", "[[geometry]\nshape="), "error", ("TOML",)))
    add(Case("sweep-valid-dry-run", sweep((), None), "handled"))
    add(Case("sweep-device-gpu0", sweep((), None, "--device", "gpu0"), "error", ("gpu0", "cuda")))
    add(Case("sweep-device-empty", sweep((), None, "--device", ""), "error", ("device",)))
    add(Case("sweep-device-tpu", sweep((), None, "--device", "xla"), "error", ("xla",)))
    add(Case("sweep-device-cuda-7", sweep((), None, "--device", "cuda:7"), "error", ("cuda",)))
    add(
        Case(
            "sweep-ray-workers-text",
            sweep((), None, "--ray-workers", "two"),
            "usage",
            ("--ray-workers",),
        )
    )
    add(
        Case(
            "sweep-ray-workers-zero",
            sweep((), None, "--ray-workers", "0"),
            "usage",
            ("--ray-workers",),
        )
    )
    add(
        Case(
            "sweep-table-suffix-early",
            sweep((), None, "--table", "t.xlsx"),
            "error",
            ("--table", "xlsx"),
        )
    )
    add(Case("sweep-unknown-flag", sweep((), None, "--gpu"), "usage", ("--gpu",)))
    add(Case("sweep-config-missing", cli("sweep", "{dir}/none.toml"), "error", ("none.toml",)))

    # sweep runs: outputs, resume, stored results and caches
    add(
        Case(
            "sweep-output-exists", _sweep_run(exists=True), "error", ("s.h5", "--resume"), slow=True
        )
    )
    add(
        Case(
            "sweep-resume-changed-config",
            _sweep_resume_changed(),
            "error",
            ("different sweep configuration",),
            slow=True,
        )
    )
    add(
        Case(
            "sweep-resume-damaged-output",
            _sweep_damaged_output(),
            "error",
            ("s.h5",),
            code=3,
            slow=True,
        )
    )
    add(Case("sweep-table-suffix", _sweep_run(table="t.xlsx"), "error", ("xlsx",), slow=True))
    for how in ("truncate", "flip", "empty", "swap"):
        add(
            Case(
                f"sweep-damaged-cache-{how}",
                _sweep_damaged_cache(how),
                "recomputed",
                ("unusable sweep cache file",),
                slow=True,
            )
        )
    for how in ("truncate", "flip", "swap"):
        add(
            Case(
                f"sweep-damaged-shard-{how}",
                _sweep_damaged_shard(how),
                "recomputed",
                ("computing chunk",),
                slow=True,
            )
        )

    # mesh files
    for name, content, fragment in [
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
    ]:
        add(Case(f"mesh-{name}", mesh_check(name, content), "error", (fragment,)))
    add(Case("mesh-missing", mesh_check("none.ply", None), "error", ("none.ply",)))
    add(
        Case(
            "mesh-open-surface",
            mesh_check("o.ply", _ply_ascii(TETRA_V, TETRA_F[:3])),
            "report",
            ("open",),
        )
    )
    add(
        Case(
            "mesh-flipped-face",
            mesh_check("f.ply", _ply_ascii(TETRA_V, [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 3, 2]])),
            "report",
            ("winding",),
        )
    )
    add(
        Case(
            "mesh-two-bodies",
            mesh_check(
                "b.ply",
                _ply_ascii(
                    TETRA_V + [[5 + x for x in v] for v in TETRA_V],
                    TETRA_F + [[i + 4 for i in f] for f in TETRA_F],
                ),
            ),
            "report",
            ("bodies",),
        )
    )
    add(
        Case(
            "mesh-tiny-unit",
            mesh_check("u.ply", _ply_ascii(TETRA_V, TETRA_F), "--unit", "m"),
            "report",
            ("extent",),
        )
    )
    add(
        Case(
            "mesh-valid",
            mesh_check("v.ply", _ply_ascii([[5 * x for x in v] for v in TETRA_V], TETRA_F)),
            "handled",
        )
    )
    for unit in ("furlong", "-1", "0", "nan", ""):
        add(
            Case(
                f"mesh-unit-{unit or 'empty'}",
                mesh_check("v.ply", _ply_ascii(TETRA_V, TETRA_F), "--unit", unit),
                "usage",
                ("--unit",),
            )
        )
    tetra = ("v.ply", _ply_ascii([[5 * x for x in v] for v in TETRA_V], TETRA_F))
    add(
        Case(
            "mesh-no-unit", _then(tetra, cli("mesh", "check", "{dir}/v.ply")), "usage", ("--unit",)
        )
    )
    add(
        Case(
            "mesh-repair-output-suffix",
            _then(tetra, cli("mesh", "repair", "{dir}/v.ply", "{dir}/r.txt", "--unit", "um")),
            "error",
            ("r.txt",),
        )
    )

    # fit flags and data
    add(Case("fit-no-data", cli("fit", "-o", "{dir}/f.json"), "error", ("--data",)))
    add(Case("fit-no-output", cli("fit", "--data", "x.csv"), "usage", ("-o",)))
    add(
        Case(
            "fit-data-missing",
            cli("fit", "--data", "{dir}/none.csv", "-o", "{dir}/f.json"),
            "error",
            ("none.csv",),
        )
    )
    for flag, value, fragment in [
        ("--axis", "1,2", "axis"),
        ("--axis", "x,y,z", "axis"),
        ("--axis", "0,0,0", "axis"),
        ("--fix", "radius", "radius"),
        ("--fix", "radius_um=abc", "radius"),
        ("--fix", "colour=3", "colour"),
    ]:
        add(Case(f"fit-flag{flag}={value}", _fit(flag, value), "error", (fragment,)))
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
        add(Case(f"fit-usage{flag}={value}", _fit(flag, value), "usage", (flag,)))
    for i, (text, fragment) in enumerate(
        [
            ("b_s_per_mm2,direction_x,direction_y,direction_z\n0,0,0,1\n", "signal"),
            ("b_s_per_mm2,direction_x,direction_y,direction_z,signal\n0,0,0,1,x\n", "f.csv"),
            ("", "f.csv"),
            ("b_s_per_mm2,direction_x,direction_y,direction_z,signal\n-5,0,0,1,1\n", "b"),
        ]
    ):
        add(Case(f"fit-data-{i}", _fit_data(text), "error", (fragment,)))

    # top-level command line
    add(Case("cli-unknown-command", cli("simulat"), "usage", ("simulat",)))
    add(Case("cli-unknown-top-flag", cli("--colour"), "usage", ("--colour",)))
    add(Case("cli-no-command", cli(), "handled", code=2))
    add(Case("cli-version", cli("--version"), "handled"))
    return c


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


def _damage(path: Path, how: str, other: Path | None = None) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flip":
        data[len(data) // 3] ^= 0x10
        path.write_bytes(bytes(data))
    elif how == "empty":
        path.write_bytes(b"")
    else:
        mine = bytes(data)
        path.write_bytes(other.read_bytes())
        other.write_bytes(mine)


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
        _damage(files[0], how, files[1])
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
        _damage(shards[0], how, shards[1])
        return [
            "sweep",
            str(folder / "s.toml"),
            "--out",
            str(folder / "s.h5"),
            "--resume",
            "--no-progress",
        ]

    return build


#: Cases accepted today although wrong: range checks owned by the 'plausibility' branch.
PENDING = {
    "simulate-signal_fraction=-0.1",
    "simulate-t2_ms=-5.0",
    "simulate-t2_ms=0.0",
    "fsl-bvals-in-ms-per-um2",
    "sweep-radius_um=-1.0",
    "sweep-radius_um=0.0",
    "sweep-length_scale_um=-1.0",
    "sweep-length_scale_um=0.0",
    "sweep-axis=[0.0, 0.0, 0.0]",
    "sweep-axis='z'",
}
CASES: list[Case] = [
    Case(**{**c.__dict__, "pending": "plausibility"}) if c.id in PENDING else c for c in _cases()
]
RECOMPUTED_CHECK = _equal_to_fresh


def counts() -> Counter:
    """Cases per outcome class."""
    return Counter(case.outcome for case in CASES)


def count_table() -> str:
    """The Markdown table of docs/errors.md between its markers."""
    total = counts()
    pending = Counter(case.outcome for case in CASES if case.pending)
    lines = ["| outcome | cases | of which pending |", "|---|---|---|"]
    lines += [f"| {name} | {total[name]} | {pending[name]} |" for name in OUTCOMES]
    lines.append(f"| **all** | **{sum(total.values())}** | **{sum(pending.values())}** |")
    return "\n".join(lines)


BEGIN, END = "<!-- bad-input counts: begin -->", "<!-- bad-input counts: end -->"


def docs_with_table(text: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    return pattern.sub(BEGIN + "\n" + count_table() + "\n" + END, text)


if __name__ == "__main__":
    DOCS.write_text(docs_with_table(DOCS.read_text()))
    print(count_table())
