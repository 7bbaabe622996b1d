"""Provenance record of a sweep: code versions, machine, precision, config and hashes."""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np
import torch

from mf_dmri import __version__
from mf_dmri.io.provenance import git_revision
from mf_dmri.sweep.plan import SweepPlan


def sweep_provenance(
    plan: SweepPlan, *, device: str, executor: str, config_text: str | None = None
) -> dict[str, Any]:
    """Everything needed to reproduce the sweep (stored as JSON in the output file)."""
    from mf_dmri.io.sealed import file_sha256

    files = sorted({g.file for g in plan.geometries if g.file})
    return {
        "mf_dmri_version": __version__,
        "git_revision": git_revision(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "precision": "complex128 signals, float64 eigen-data",
        "executor": executor,
        "seed": plan.spec.seed,
        "spec_si": plan.spec.to_dict(),
        "config_text": config_text,
        "geometry_digests": [g.digest() for g in plan.geometries],
        "mesh_file_sha256": {f: file_sha256(f) for f in files},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
