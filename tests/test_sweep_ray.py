"""The sweep on Ray (2 local workers) gives the same output as the local run, and a task
that fails is retried."""

import functools
import os
from pathlib import Path

import numpy as np
import pytest
from sweep_helpers import MemorySink, coupled_spec, flaky_cylinder, killing_cylinder, small_spec

from mf_dmri.io.sweep_toml import default_registry
from mf_dmri.sweep import DEFAULT_REGISTRY, GeometryBuilder, build_plan, run_sweep

ray = pytest.importorskip("ray", reason="the optional package ray is not installed")

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance with 2 workers for the module (start-up takes ~10 s)."""
    paths = [str(TESTS.parent), str(TESTS), os.environ.get("PYTHONPATH", "")]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}},
    )
    yield ray
    ray.shutdown()


def test_ray_run_equals_local_run(local_ray):
    spec = small_spec(chunk_rows=3)
    local, distributed = MemorySink(), MemorySink()
    local_result = run_sweep(spec, local)
    ray_result = run_sweep(spec, distributed, executor="ray")
    assert ray_result.executor == "ray" and ray_result.basis_solves == 3
    assert set(local.signals) == set(range(6))
    _assert_same_table(distributed, local)
    assert local_result.rows == ray_result.rows


def test_coupled_ray_run_equals_local_run(local_ray):
    """One Ray task per coupled point (one permeability each): the same table."""
    spec, registry = coupled_spec(permeabilities=(0.0, 1e-4)), default_registry()
    local, distributed = MemorySink(), MemorySink()
    run_sweep(spec, local, registry=registry)
    result = run_sweep(spec, distributed, registry=registry, executor="ray")
    assert result.basis_solves == 2 and set(distributed.signals) == set(local.signals) == {0, 1}
    # Ray workers run LAPACK on one thread and this process on several: the coupled
    # eigensolve then rounds differently, so the tables agree to round-off, not bitwise.
    for index, signals in local.signals.items():
        np.testing.assert_allclose(distributed.signals[index], signals, rtol=1e-11, atol=1e-14)


def _retried_on_ray(build, tmp_path):
    """(spec, Ray table, local table) of ``small_spec`` whose cylinder builder is ``build``
    (a builder of sweep_helpers that fails each geometry's first attempt and leaves a file
    in ``tmp_path``) on Ray; the local run uses the default builder."""
    builder = GeometryBuilder(
        "cylinder",
        functools.partial(build, str(tmp_path)),
        DEFAULT_REGISTRY["cylinder"].parameters,
        options=DEFAULT_REGISTRY["cylinder"].options,
    )
    spec = small_spec(chunk_rows=4)
    sink, reference = MemorySink(), MemorySink()
    run_sweep(spec, sink, registry=DEFAULT_REGISTRY.with_builder(builder), executor="ray")
    run_sweep(spec, reference)
    return spec, sink, reference


def _assert_same_table(sink, reference):
    assert set(sink.signals) == set(reference.signals)
    for index, signals in reference.signals.items():
        np.testing.assert_array_equal(sink.signals[index], signals)


def test_failed_ray_tasks_are_retried(local_ray, tmp_path):
    spec, sink, reference = _retried_on_ray(flaky_cylinder, tmp_path)
    assert len(list(tmp_path.glob("failed_*"))) == 3  # every geometry task failed once
    plan = build_plan(spec, DEFAULT_REGISTRY)
    assert set(sink.signals) == {c.index for c in plan.chunks}
    _assert_same_table(sink, reference)


def test_killed_ray_worker_is_retried_to_the_local_table(local_ray, tmp_path):
    """Each geometry task SIGKILLs its worker process on its first attempt: Ray restarts
    the worker and retries the task; the table equals the local run's bit for bit."""
    _, sink, reference = _retried_on_ray(killing_cylinder, tmp_path)
    assert len(list(tmp_path.glob("killed_*"))) == 3  # every geometry's worker was killed
    _assert_same_table(sink, reference)


def test_missing_ray_is_a_clear_error(monkeypatch):
    import mf_dmri.sweep.distributed as distributed

    def no_ray(name):
        raise ImportError(name)

    monkeypatch.setattr(distributed.importlib, "import_module", no_ray)
    with pytest.raises(ValueError, match="pip install ray"):
        run_sweep(small_spec(), MemorySink(), executor="ray")
