"""Every ```python block of README.md runs on its own (a fresh namespace each), and every
```bash block runs command by command (``mf-dmri`` is this checkout's CLI) in a scratch
folder holding a copy of ``examples/`` and ``tests/data/``.  Blocks fenced as ```sh are
install commands and are not run."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


PYTHON = blocks("python")
BASH = blocks("bash")


def test_readme_has_runnable_blocks():
    assert len(PYTHON) >= 5 and len(BASH) >= 1
    commands = " ".join(BASH)
    for command in ("demo", "simulate", "fit", "sweep", "mesh"):
        assert f"mf-dmri {command}" in commands, f"README shows no 'mf-dmri {command}'"


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_block_runs_on_its_own(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(PYTHON[index], f"README.md python block {index + 1}", "exec"), {})


def test_bash_blocks_run(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "tests" / "data", tmp_path / "tests" / "data")
    for block in BASH:
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            words = shlex.split(line)
            assert words[0] == "mf-dmri", f"README bash lines call mf-dmri: {line!r}"
            argv = [sys.executable, "-m", "mf_dmri.cli.main", *words[1:]]
            done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
