"""Provenance of results: what produced a file, when, from which code and inputs."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


def git_revision(directory: str | Path | None = None) -> str | None:
    """``git describe``-like revision of the source tree (``+dirty`` if modified), or None
    outside a git checkout."""
    where = Path(directory or Path(__file__).resolve().parents[2])
    try:
        head = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def provenance(config: Mapping[str, Any] | None = None, **inputs: Any) -> dict[str, Any]:
    """Package, git, torch, numpy and Python versions, the date, the ``config`` as read and
    any named ``inputs`` (physical values: state their units in the key names)."""
    from mf_dmri import __version__

    return {
        "mf_dmri_version": __version__,
        "git_revision": git_revision(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": dict(config) if config is not None else None,
        **inputs,
    }


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, tuples and numpy values made
    plain, so that ``json.dumps(..., allow_nan=False)`` accepts it (strict JSON has no NaN
    or Infinity)."""
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return strict_json(value.tolist())
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, torch.Tensor):
        return strict_json(value.detach().cpu().tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any) -> str:
    """Strict JSON text (no NaN or Infinity) of ``value``, indented, keys in order given."""
    return json.dumps(strict_json(value), indent=2, allow_nan=False, default=str) + "\n"
