"""scripts/check_extras.py: CI fails when an advertised optional package is missing, and
every module it lists is installed by an extra that pyproject.toml defines."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import check_extras  # noqa: E402


def test_missing_advertised_package_fails(monkeypatch, capsys):
    monkeypatch.setitem(check_extras.ADVERTISED, "no_such_module_mf_dmri", "ray")
    monkeypatch.delenv("MF_DMRI_OPTIONAL_MISSING_OK", raising=False)
    assert check_extras.main() == 1
    assert "no_such_module_mf_dmri" in capsys.readouterr().err
    monkeypatch.setenv("MF_DMRI_OPTIONAL_MISSING_OK", "no_such_module_mf_dmri")
    assert "no_such_module_mf_dmri" not in check_extras.missing_modules({"no_such_module_mf_dmri"})


def test_every_listed_extra_exists_and_ci_installs_it():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    install = (ROOT / "scripts" / "install.sh").read_text()
    ci_line = next(line for line in install.splitlines() if '"ci" ] && extra=' in line)
    for module, extra in check_extras.ADVERTISED.items():
        if extra.startswith("core"):
            continue
        assert extra in extras, module
        assert extra in ci_line, extra
    assert "check_extras.py" in (ROOT / ".ci" / "run").read_text()
    assert importlib.util.find_spec("tomllib") is not None
