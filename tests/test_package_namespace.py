"""The package's namespace: subpackages are reachable from ``import mf_dmri as mf``."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_subpackages_are_attributes_of_a_fresh_import():
    """``mf.geometry.repair_surface`` without ``import mf_dmri.geometry`` first (a fresh
    interpreter: other tests import the subpackages), and ``mf.signal`` stays the call."""
    code = (
        "import mf_dmri as mf\n"
        "assert callable(mf.geometry.repair_surface) and callable(mf.fem.mesh_eigenbasis)\n"
        "assert callable(mf.signal) and mf.sequences.PGSE is mf.PGSE\n"
        "assert {'geometry', 'fem', 'io'} <= set(dir(mf))\n"
        "try:\n"
        "    mf.not_a_module\n"
        "except AttributeError as exc:\n"
        "    assert 'not_a_module' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert run.returncode == 0, run.stderr
