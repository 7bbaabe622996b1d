"""Sweep descriptions: TOML units, validation errors, grids/random axes, plan expansion."""

import numpy as np
import pytest

from mf_dmri.io.sweep_toml import spec_from_toml
from mf_dmri.sweep import DEFAULT_REGISTRY, Grid, Random, Values, build_plan
from mf_dmri.sweep.ranges import combine_axes

BASE = """
seed = 7
[[geometry]]
shape = "cylinder"
radius_um = {grid = [1.0, 3.0], num = 3}
[tissue]
diffusivity_um2_per_ms = [1.0, 2.0]
t2_ms = {uniform = [40.0, 100.0], num = 4}
[[acquisition]]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = [20, 30]
b_s_per_mm2 = [0, 1000]
directions = 5
"""


def test_units_are_converted_to_si():
    spec = spec_from_toml(BASE)
    plan = build_plan(spec, DEFAULT_REGISTRY)
    assert np.allclose([g.parameters["radius"] for g in plan.geometries], [1e-6, 2e-6, 3e-6])
    assert set(np.unique(plan.tissue["diffusivity"])) == {1e-9, 2e-9}
    assert np.all((plan.tissue["t2"] >= 0.04) & (plan.tissue["t2"] < 0.1))
    block = spec.acquisitions[0]
    assert block.pulse_duration == (0.01,) and block.pulse_separation == (0.02, 0.03)
    assert block.bvalues == (0.0, 1e9)
    # 2 timings x (1 b=0 + 1 shell x 5 directions)
    assert plan.measurements.count == 12
    assert plan.num_rows == 3 * 2 * 4


def test_random_axes_are_seeded_and_independent_of_other_axes():
    first = build_plan(spec_from_toml(BASE), DEFAULT_REGISTRY).tissue["t2"]
    again = build_plan(spec_from_toml(BASE), DEFAULT_REGISTRY).tissue["t2"]
    other_seed = build_plan(spec_from_toml(BASE.replace("seed = 7", "seed = 8")), DEFAULT_REGISTRY)
    more_d = build_plan(
        spec_from_toml(BASE.replace("[1.0, 2.0]", "[1.0, 2.0, 3.0]")), DEFAULT_REGISTRY
    )
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other_seed.tissue["t2"])
    assert np.array_equal(np.unique(first), np.unique(more_d.tissue["t2"]))


def test_product_and_zip():
    axes = {"a": Values((1.0, 2.0)), "b": Grid(0.0, 1.0, 3)}
    product = combine_axes(axes, "product", 0, "x")
    assert product["a"].tolist() == [1, 1, 1, 2, 2, 2]
    assert product["b"].tolist() == [0, 0.5, 1, 0, 0.5, 1]
    zipped = combine_axes({"a": Values((1.0, 2.0)), "b": Random(0.0, 1.0, 2)}, "zip", 0, "x")
    assert zipped["a"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="equal length"):
        combine_axes(axes, "zip", 0, "x")


def test_log_grid_and_log_uniform():
    spec = spec_from_toml(
        BASE.replace("{grid = [1.0, 3.0], num = 3}", "{log_grid = [1.0, 100.0], num = 3}")
    )
    radii = [g.parameters["radius"] for g in build_plan(spec, DEFAULT_REGISTRY).geometries]
    assert np.allclose(radii, [1e-6, 1e-5, 1e-4])
    samples = Random(1.0, 100.0, 2000, log=True).sample(3, "r")
    assert samples.min() >= 1 and samples.max() < 100
    assert abs(np.mean(np.log10(samples)) - 1.0) < 0.05  # uniform in log10 on [0, 2]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("radius_um", "radius", "needs a unit: write radius_um"),
        ("radius_um", "radius_cm", "unknown length unit 'cm'"),
        ("radius_um", "radius_ms", "'ms' is a time unit"),
        ("radius_um", "radious_um", "unknown key 'radious_um'"),
        ("t2_ms", "t2_um", "'um' is a length unit"),
        ("b_s_per_mm2", "b", "needs a unit"),
        ("[1.0, 2.0]", "[]", "empty list"),
        ("num = 3", "num = 0", "num >= 1"),
        ("{grid = [1.0, 3.0], num = 3}", "{grid = [2.0, 2.0], num = 3}", "empty grid range"),
        ("[40.0, 100.0]", "[100.0, 40.0]", "empty random range"),
        ('shape = "cylinder"', 'shape = "hexagon"', "unknown geometry shape 'hexagon'"),
        ("seed = 7", "seed = 7\nbogus = 1", "unknown top-level keys"),
        ("pulse_separation_ms = [20, 30]", "pulse_separation_ms = [5]", "exceeds"),
        ("directions = 5", "directions = [[0, 0, 0]]", "non-zero 3-vector"),
        (
            "t2_ms = {",
            "permeability_um_per_ms = 0.01\nt2_ms = {",
            r"\[tissue\] permeability_um_per_ms: permeability couples compartments",
        ),
        ("[1.0, 2.0]", "[1.0, -2.0]", "must be positive"),
        ("seed = 7", "seed = 7\n[[[", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_problem(old, new, message):
    assert old in BASE
    with pytest.raises(ValueError, match=message):
        build_plan(spec_from_toml(BASE.replace(old, new, 1)), DEFAULT_REGISTRY)


def test_per_compartment_tissue_keys():
    text = BASE.replace(
        "[[acquisition]]", "[tissue.intra]\nspin_density = [0.5, 1.0]\n[[acquisition]]"
    )
    plan = build_plan(spec_from_toml(text), DEFAULT_REGISTRY)
    assert "intra.spin_density" in plan.tissue
    assert plan.num_tissue == 2 * 4 * 2


def test_parameter_table_rows_and_chunks():
    text = "chunk_rows = 5\n" + BASE
    plan = build_plan(spec_from_toml(text), DEFAULT_REGISTRY)
    table = plan.parameter_table()
    assert table["row"].tolist() == list(range(plan.num_rows))
    assert table["geometry_index"].tolist() == sorted(table["geometry_index"].tolist())
    covered = sorted(r for c in plan.chunks for r in range(c.row_start, c.row_start + c.size))
    assert covered == list(range(plan.num_rows))  # no row lost or duplicated
    assert all(c.size <= 5 for c in plan.chunks)
    assert all(
        table["geometry_index"][c.row_start] == table["geometry_index"][c.row_start + c.size - 1]
        for c in plan.chunks
    )


def test_acquisition_pieces_reach_the_requested_bvalues():
    """PGSE pieces equal the hand-built Stejskal-Tanner ones (tests/helpers.py); OGSE
    b-values match the closed form of mf_dmri.sequences (Does et al. 2003)."""
    import torch
    from helpers import pgse_amplitude, pgse_pieces

    from mf_dmri.sequences import ogse_bvalue
    from mf_dmri.sweep.acquisition import timing_acquisition, timing_pieces

    text = BASE + (
        '\n[[acquisition]]\nsequence = "ogse"\nkind = "cos"\npulse_duration_ms = 20\n'
        "pulse_separation_ms = 25\nnum_periods = [1, 3]\nb_s_per_mm2 = [0, 500]\ndirections = 2\n"
    )
    plan = build_plan(spec_from_toml(text), DEFAULT_REGISTRY)
    table = plan.measurements
    assert table.count == 12 + 2 * 3
    first = table.timings[0]
    pieces = timing_pieces(table, first)
    b = table.columns["bvalue"][first.indices]
    directions = np.stack([table.columns[f"direction_{a}"][first.indices] for a in "xyz"], 1)
    expected = pgse_pieces(0.01, 0.02, pgse_amplitude(b, 0.01, 0.02), directions)
    torch.testing.assert_close(pieces.gradients, expected.gradients, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(pieces.durations, expected.durations)
    for timing in table.timings[2:]:
        assert timing.sequence == "ogse"
        acquisition = timing_acquisition(table, timing)
        np.testing.assert_allclose(
            acquisition.bvalues().numpy(), table.columns["bvalue"][timing.indices], rtol=1e-9
        )
        unit = float(ogse_bvalue(1.0, 0.02, timing.num_periods, "cos"))
        amplitude = float(acquisition.amplitudes[-1])
        np.testing.assert_allclose(unit * amplitude**2, 500e6, rtol=1e-9)
    assert table.columns["frequency"][-1] == 3 / 0.02


def test_geometry_files_only_for_file_based_shapes(tmp_path):
    (tmp_path / "axon.ply").write_text("not used")
    text = BASE.replace('shape = "cylinder"', 'shape = "cylinder"\nfiles = ["axon.ply"]')
    with pytest.raises(ValueError, match="not built from files"):
        build_plan(spec_from_toml(text, base_dir=tmp_path), DEFAULT_REGISTRY)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        spec_from_toml(text.replace("axon.ply", "missing.ply"), base_dir=tmp_path)
