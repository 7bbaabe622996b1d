"""The bad-input suite (tests/bad_input_cases.py, one row per case): every case reaches the
user as its outcome class says, naming the offending key, file or flag; no traceback ever
reaches a command-line user; the counts per class in docs/errors.md are those of the table.
Random bytes as configs and mesh files (hypothesis) give one clear line, never a traceback."""

from __future__ import annotations

import logging

import pytest
from bad_input_cases import CASES, DOCS, OUTCOMES, RECOMPUTED_CHECK, docs_with_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mf_dmri.cli.main import main

DEFAULT_CODE = {"error": 1, "usage": 2, "report": 1, "recomputed": 0, "handled": 0}


def run_cli(argv, capsys, caplog):
    caplog.clear()
    try:
        with caplog.at_level(logging.WARNING):
            code = main(argv)
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err, caplog.text


def _params():
    for case in CASES:
        marks = [pytest.mark.slow] if case.slow and case.outcome != "recomputed" else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", _params())
def test_bad_input(case, tmp_path, capsys, caplog):
    argv = case.build(tmp_path)
    capsys.readouterr()
    code, out, err, log = run_cli(argv, capsys, caplog)
    expected = case.code if case.code is not None else DEFAULT_CODE[case.outcome]
    shown = f"exit {code}\nstdout: {out}\nstderr: {err}\nlog: {log}"
    assert "Traceback" not in err + out, shown
    assert code == expected, shown
    lines = [line for line in err.splitlines() if line.strip()]
    if case.outcome == "error":
        assert len(lines) == 1 and lines[0].startswith("mf-dmri "), shown
        assert ": error: " in lines[0], shown
    elif case.outcome == "usage":
        assert lines and "error:" in lines[-1], shown
    elif case.outcome == "recomputed":
        RECOMPUTED_CHECK(tmp_path)
    text = err if case.outcome in ("error", "usage") else out + err + log
    for fragment in case.fragments:
        assert fragment.lower() in text.lower(), f"{fragment!r} not shown\n{shown}"


def test_at_least_150_cases_and_every_class_present():
    assert len(CASES) >= 150
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
    assert {case.outcome for case in CASES} == set(OUTCOMES)


def test_docs_count_table_is_current():
    text = DOCS.read_text()
    assert docs_with_table(text) == text, "run: python tests/bad_input_cases.py"


QUICK = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@QUICK
@given(st.binary(max_size=400))
def test_random_bytes_as_a_config_give_one_line(tmp_path, capsys, caplog, data):
    config = tmp_path / "c.toml"
    config.write_bytes(data)
    code, out, err, _ = run_cli(
        ["simulate", str(config), "-o", str(tmp_path / "o.csv")], capsys, caplog
    )
    assert code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@QUICK
@given(st.sampled_from([".stl", ".ply", ".obj", ".off", ".vtk"]), st.binary(max_size=600))
def test_random_bytes_as_a_mesh_give_one_line(tmp_path, capsys, caplog, suffix, data):
    mesh = tmp_path / f"m{suffix}"
    mesh.write_bytes(data)
    code, out, err, _ = run_cli(["mesh", "check", str(mesh), "--unit", "um"], capsys, caplog)
    assert "Traceback" not in err + out
    assert code == 1
    if err.strip():
        assert len(err.strip().splitlines()) == 1, err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "simulate", str(tmp_path / "none.toml")])


def test_exit_codes_of_the_boundary():
    from mf_dmri.cli.main import EXIT_CODES, classify
    from mf_dmri.fem.resolution import ResolutionWarning
    from mf_dmri.io.sealed import CorruptArtefactError

    assert classify(ResolutionWarning("mesh too coarse"))[0] == 1
    assert "--strict" in classify(ResolutionWarning("mesh too coarse"))[1]
    assert classify(CorruptArtefactError("x.h5 is damaged"))[0] == 3
    assert classify(ModuleNotFoundError("no", name="pyarrow"))[0] == 4
    assert classify(KeyboardInterrupt())[0] == 130
    code, message = classify(ZeroDivisionError("division by zero"))
    assert code == 70 and "--debug" in message
    assert classify(ValueError("line one\nline two"))[1] == "line one; line two"
    documented = DOCS.read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in documented
