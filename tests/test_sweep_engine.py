"""Sweep engine: batched signals against the public signal() one point at a time,
eigenbasis reuse (solve counts, disk cache), resumption and the stored file."""

import math

import numpy as np
import pytest
import torch
from sweep_helpers import MemorySink, counting_registry, small_spec

from mf_dmri.analytic import cylinder, slab
from mf_dmri.io.sweep_cache import DiskBasisCache
from mf_dmri.io.sweep_provenance import sweep_provenance
from mf_dmri.io.sweep_store import SweepStore, export_table, read_sweep
from mf_dmri.signal import Compartment, signal
from mf_dmri.sweep import (
    DEFAULT_REGISTRY,
    GeometryBuilder,
    GeometrySimulator,
    TissueSpec,
    Values,
    build_plan,
    run_sweep,
)
from mf_dmri.sweep.acquisition import timing_pieces
from mf_dmri.units import um, um2_per_ms


def _fraction(tissue_row, name, domains):
    """The volume fraction of compartment ``name`` (the rest for the one without)."""
    given = {n: tissue_row.get(f"{n}.volume_fraction") for n in domains}
    if all(v is None for v in given.values()):
        return None
    if given[name] is not None:
        return given[name]
    return 1 - sum(v for v in given.values() if v is not None)


def reference_signal(domains, tissue_row, plan, normalize=True):
    """The public mf_dmri.signal.signal, one tissue point and one timing at a time."""
    out = torch.zeros(plan.measurements.count, dtype=torch.complex128)
    for timing in plan.measurements.timings:
        compartments = [
            Compartment(
                domain,
                tissue_row.get(f"{name}.diffusivity", tissue_row.get("diffusivity")),
                t2=tissue_row.get(f"{name}.t2", tissue_row.get("t2", math.inf)),
                spin_density=tissue_row.get(
                    f"{name}.spin_density", tissue_row.get("spin_density", 1.0)
                ),
                volume_fraction=_fraction(tissue_row, name, domains),
            )
            for name, domain in domains.items()
        ]
        pieces = timing_pieces(plan.measurements, timing)
        out[timing.indices] = signal(compartments, pieces, normalize=normalize)
    return out.numpy()


def test_batched_signals_match_public_signal_point_by_point():
    plan = build_plan(small_spec(radii=(2.0 * um,)), DEFAULT_REGISTRY)
    point = plan.geometries[0]
    domains = DEFAULT_REGISTRY[point.shape](point.parameters, point.options)
    batched = GeometrySimulator(domains, plan.measurements).signals(plan.tissue).numpy()
    for k in range(plan.num_tissue):
        row = {name: float(values[k]) for name, values in plan.tissue.items()}
        np.testing.assert_allclose(batched[k], reference_signal(domains, row, plan), atol=1e-13)
    assert np.abs(batched).min() < 0.9  # diffusion weighting is really there


def two_compartment_registry():
    def build(parameters, options, plausibility):
        return {
            "intra": cylinder(parameters["radius"], (0, 0, 1), length_scale=2 * um),
            "extra": slab(4 * um, (1, 0, 0), length_scale=2 * um),
        }

    return DEFAULT_REGISTRY.with_builder(
        GeometryBuilder(
            "pair", build, {"radius": "length", "length_scale": "length"}, options={"axis": "-"}
        )
    )


def test_per_compartment_tissue_weights_match_multi_compartment_signal():
    """An infinite cylinder with a slab around it, weighted by volume fractions (the
    extra compartment takes the rest), against the public signal() with fractions."""
    registry = two_compartment_registry()
    spec = small_spec(radii=(2.0 * um,), shape="pair")
    tissue = TissueSpec(
        {
            "intra.diffusivity": Values((1.5 * um2_per_ms,)),
            "extra.diffusivity": Values((2.5 * um2_per_ms, 3.0 * um2_per_ms)),
            "t2": Values((0.06,)),
            "extra.t2": Values((0.1,)),
            "intra.spin_density": Values((0.4, 1.0)),
            "intra.volume_fraction": Values((0.3, 0.7)),
        }
    )
    spec = type(spec)(spec.geometries, tissue, spec.acquisitions, chunk_rows=2)
    plan = build_plan(spec, registry)
    point = plan.geometries[0]
    domains = registry["pair"](point.parameters, {})
    sink = MemorySink()
    run_sweep(plan, sink, registry=registry)
    result = sink.matrix(plan)
    for k in range(plan.num_tissue):
        row = {name: float(values[k]) for name, values in plan.tissue.items()}
        np.testing.assert_allclose(result[k], reference_signal(domains, row, plan), atol=1e-13)


def test_mixed_compartment_kinds_without_fractions_are_refused():
    registry = two_compartment_registry()
    spec = small_spec(radii=(2.0 * um,), shape="pair")
    tissue = TissueSpec({"diffusivity": Values((2e-9,))})
    spec = type(spec)(spec.geometries, tissue, spec.acquisitions)
    with pytest.raises(ValueError, match="give each Compartment a volume_fraction"):
        run_sweep(spec, MemorySink(), registry=registry)


def test_error_bars_are_those_of_signal_with_error_at_the_extreme_diffusivities():
    """One compartment: a row's bar is the larger, over the smallest and largest
    diffusivity of the sweep, of signal_with_error's bar plus the distance of the sweep's
    signal (its a-priori cutoff) to signal_with_error's, times the row's T2 decay."""
    from mf_dmri.signal import signal_with_error
    from mf_dmri.sweep.engine import geometry_chunks, solve_geometry

    spec = small_spec(radii=(3.0 * um,))
    plan = build_plan(spec, DEFAULT_REGISTRY)
    (domain,) = solve_geometry(plan.geometries[0], DEFAULT_REGISTRY, None)[0].values()
    chunks = list(geometry_chunks(plan, 0, plan.chunks))
    signals = np.concatenate([s for _, s, _, _ in chunks])
    bars = np.concatenate([b for _, _, b, _ in chunks])
    diffusivity, t2 = plan.tissue["diffusivity"], plan.tissue["t2"]
    for timing in plan.measurements.timings:
        pieces = timing_pieces(plan.measurements, timing)
        decay = np.exp(-float(pieces.echo_time) / t2)
        expected = []
        for d in (diffusivity.min(), diffusivity.max()):
            checked = signal_with_error(Compartment(domain, d), pieces)
            row = int(np.flatnonzero(diffusivity == d)[0])
            kept = signals[row, timing.indices] / decay[row]
            distance = np.abs(kept - checked.signal.numpy())
            expected.append(checked.error_bar.numpy() + distance)
        np.testing.assert_allclose(
            bars[:, timing.indices],
            decay[:, None] * np.maximum(*expected)[None, :],
            rtol=1e-9,
            atol=1e-15,
        )


def test_unknown_compartment_in_tissue_is_an_error():
    spec = small_spec(radii=(2.0 * um,))
    tissue = TissueSpec({"diffusivity": Values((1e-9,)), "axon.t2": Values((0.05,))})
    spec = type(spec)(spec.geometries, tissue, spec.acquisitions)
    with pytest.raises(ValueError, match="compartments \\['axon'\\] that the geometry lacks"):
        run_sweep(spec, MemorySink())


def test_tissue_only_sweep_solves_each_geometry_once(tmp_path):
    calls = []
    registry = counting_registry(calls)
    spec = small_spec(chunk_rows=1)  # 3 geometries x 4 tissue points, one row per chunk
    sink = MemorySink()
    result = run_sweep(spec, sink, registry=registry)
    assert len(calls) == 3 and result.basis_solves == 3
    assert result.chunks_computed == 12
    # with a disk cache: solved once, then loaded
    cache = DiskBasisCache(tmp_path / "cache")
    first = run_sweep(spec, MemorySink(), registry=registry, cache=cache)
    second_sink = MemorySink()
    second = run_sweep(spec, second_sink, registry=registry, cache=cache)
    assert (first.basis_solves, first.cache_hits) == (3, 0)
    assert (second.basis_solves, second.cache_hits) == (0, 3)
    assert len(calls) == 6
    plan = build_plan(spec, registry)
    cached = cache.get(plan.geometries[0])["intra"].factors[0]
    assert cached.isotropic and cached.num_modes > 1  # the disk basis keeps its symmetry flag
    np.testing.assert_array_equal(second_sink.matrix(plan), sink.matrix(plan))


class Interrupt(Exception):
    pass


def run_to_file(spec, path, *, resume=False, stop_after=None):
    plan = build_plan(spec, DEFAULT_REGISTRY)
    store = SweepStore(path, plan, resume=resume)

    def progress(update):
        if stop_after is not None and update.chunks_done - update_start[0] >= stop_after:
            raise Interrupt

    update_start = [len(store.completed())]
    result = run_sweep(plan, store, progress=progress)
    store.finalize(sweep_provenance(plan, device=result.device, executor="local"))
    return result


def test_interrupted_sweep_resumes_to_the_same_file(tmp_path):
    spec = small_spec(chunk_rows=2)  # 3 geometries x 4 tissue -> 6 chunks
    reference = tmp_path / "full.h5"
    run_to_file(spec, reference)
    out = tmp_path / "resumed.h5"
    with pytest.raises(Interrupt):
        run_to_file(spec, out, stop_after=2)
    parts = tmp_path / "resumed.h5.parts"
    assert len(list(parts.glob("chunk_*.npz"))) == 2 and not out.exists()
    (parts / ".chunk_0000005.npz.999.tmp").write_bytes(b"half-written shard")  # killed mid-write
    with pytest.raises(ValueError, match="pass --resume"):
        run_to_file(spec, out)
    with pytest.raises(Interrupt):
        run_to_file(spec, out, resume=True, stop_after=1)
    result = run_to_file(spec, out, resume=True)
    assert (result.chunks_skipped, result.chunks_computed) == (3, 3)
    assert not parts.exists()
    full, resumed = read_sweep(reference), read_sweep(out)
    np.testing.assert_array_equal(resumed.signals, full.signals)
    for name, column in full.parameters.items():
        np.testing.assert_array_equal(resumed.parameters[name], column)
    # resuming a finished sweep does nothing; a different config is refused
    assert run_to_file(spec, out, resume=True).chunks_computed == 0
    with pytest.raises(ValueError, match="different sweep configuration"):
        run_to_file(small_spec(chunk_rows=3), out, resume=True)
    with pytest.raises(ValueError, match="already exists"):
        run_to_file(spec, out)


def test_stored_file_content_and_table_export(tmp_path):
    spec = small_spec()
    out = tmp_path / "s.h5"
    run_to_file(spec, out)
    data = read_sweep(out)
    plan = build_plan(spec, DEFAULT_REGISTRY)
    assert data.signals.shape == (plan.num_rows, plan.measurements.count)
    assert data.signals.dtype == np.complex128
    assert list(data.parameters)[:4] == ["row", "geometry_index", "shape", "file"]
    np.testing.assert_array_equal(data.parameters["t2"], np.tile(plan.tissue["t2"], 3))
    np.testing.assert_array_equal(data.measurements["bvalue"], plan.measurements.columns["bvalue"])
    prov = data.provenance
    for key in (
        "mf_dmri_version",
        "git_revision",
        "torch_version",
        "device",
        "precision",
        "seed",
        "geometry_digests",
        "config_hash",
        "spec_si",
    ):
        assert key in prov
    assert len(set(prov["geometry_digests"])) == 3
    # b = 0 rows: exp(-TE/T2) / 1 with normalisation (T2 weighting only)
    b0 = np.flatnonzero(data.measurements["bvalue"] == 0)
    echo = data.measurements["pulse_separation"][b0] + data.measurements["pulse_duration"][b0]
    expected = np.exp(-echo[None] / data.parameters["t2"][:, None])
    np.testing.assert_allclose(data.signals[:, b0].real, expected, rtol=1e-12)
    table = export_table(out, tmp_path / "table.csv")
    lines = table.read_text().splitlines()
    assert lines[0].split(",")[:4] == ["row", "geometry_index", "shape", "file"]
    assert len(lines) == plan.num_rows + 1
    first = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert float(first["radius_um"]) == pytest.approx(data.parameters["radius"][0] / 1e-6)
    assert float(first["t2_ms"]) == pytest.approx(data.parameters["t2"][0] / 1e-3)
    assert float(first["signal_error_bar_max"]) == data.error_bars[0].max()
    import h5py

    with h5py.File(out) as handle:
        assert handle["parameters/radius"].attrs["unit"] == "m"
        assert handle["measurements/bvalue"].attrs["unit"] == "s/m^2"
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    parquet = pq.read_table(export_table(out, tmp_path / "table.parquet"))
    assert parquet.num_rows == plan.num_rows
