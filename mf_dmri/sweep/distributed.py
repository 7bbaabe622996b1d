"""The sweep on Ray: one task per geometry (one eigen-solve each), retried on failure.

Ray is optional and imported only here, lazily.  Without an address a local Ray instance
is started (and stopped at the end); with one, the running cluster is joined, whose
workers must have mf_dmri installed.  Tasks return their chunks to the driver, which
writes them through the same sink as a local run, so the output is the same.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from mf_dmri.sweep.plan import Chunk, SweepPlan
from mf_dmri.sweep.registry import GeometryRegistry

logger = logging.getLogger(__name__)

#: How often a failed geometry task is retried before the sweep fails.
MAX_RETRIES = 3


def _import_ray():
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise ValueError(
            "the Ray executor needs the optional package 'ray': pip install ray "
            "(or run without --ray)"
        ) from exc


def geometry_task(
    plan: SweepPlan,
    registry: GeometryRegistry,
    geometry: int,
    chunks: Sequence[Chunk],
    cache,
    device: str,
    max_chunk_bytes: int,
) -> tuple[list[tuple[Chunk, np.ndarray, np.ndarray]], bool]:
    """Body of one Ray task: every pending chunk of one geometry, and whether it solved."""
    from mf_dmri.sweep.engine import geometry_chunks

    results, solved_any = [], False
    for chunk, signals, bars, solved in geometry_chunks(
        plan,
        geometry,
        chunks,
        registry=registry,
        cache=cache,
        device=device,
        max_chunk_bytes=max_chunk_bytes,
    ):
        results.append((chunk, signals, bars))
        solved_any = solved_any or solved
    return results, solved_any


def _runtime_env() -> dict:
    """Make the driver's mf_dmri (and PYTHONPATH) importable by local workers."""
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}}


def run_on_ray(
    plan: SweepPlan,
    pending: dict[int, list[Chunk]],
    accept: Callable[[Chunk, np.ndarray, np.ndarray, bool | None], None],
    *,
    registry: GeometryRegistry,
    cache,
    device: torch.device,
    max_chunk_bytes: int,
    address: str | None = None,
    workers: int | None = None,
    max_retries: int = MAX_RETRIES,
) -> None:
    """Run one task per pending geometry and pass each finished chunk to ``accept``."""
    if not pending:
        return
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        options = {"log_to_driver": False, "include_dashboard": False}
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=workers, runtime_env=_runtime_env(), **options)
        started = True
    try:
        remote = ray.remote(max_retries=max_retries, retry_exceptions=True)(geometry_task)
        if device.type == "cuda":
            remote = remote.options(num_gpus=1)
        plan_ref = ray.put(plan)
        futures = {
            remote.remote(plan_ref, registry, g, chunks, cache, str(device), max_chunk_bytes): g
            for g, chunks in pending.items()
        }
        logger.info("ray: %d geometry tasks submitted", len(futures))
        while futures:
            ready, _ = ray.wait(list(futures), num_returns=1)
            geometry = futures.pop(ready[0])
            try:
                results, solved = ray.get(ready[0])
            except Exception as exc:
                raise RuntimeError(
                    f"the Ray task of geometry {geometry} failed after {max_retries} retries: "
                    f"{exc}; the chunks already finished are stored, rerun with --resume"
                ) from exc
            for i, (chunk, signals, bars) in enumerate(results):
                accept(chunk, signals, bars, solved if i == 0 else None)
    finally:
        if started:
            ray.shutdown()
