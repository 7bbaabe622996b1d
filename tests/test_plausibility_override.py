"""The plausibility override reaches every front end and every check of a run.

For each path a value that the range checks of ``mf_dmri.plausibility`` refuse is run
twice: without the override it is refused naming the key, with it (``--allow`` or the
TOML ``[checks]`` table) the run completes.  Paths: ``mf-dmri simulate`` (the config
reader), the ``[mesh]`` system of ``mf-dmri simulate`` (the coupled parameters
``PermeableParameters``), ``mf-dmri sweep`` (TOML reader, analytic shape builder,
coupled tissue points).  ``mf-dmri demo`` takes no physical input and has no override.
"""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest
from sweep_helpers import MemorySink, coupled_spec

from mf_dmri.cli.main import main
from mf_dmri.geometry import concatenate, sphere
from mf_dmri.io.mesh import save_surface
from mf_dmri.io.sweep_toml import default_registry, spec_from_toml
from mf_dmri.plausibility import CHECKED, ImplausibleValueError, Plausibility
from mf_dmri.sweep import run_sweep
from mf_dmri.units import um

REGISTRY = default_registry()
#: 20 s: impossible as a T2 (the possible range ends at 10 s).
LONG_T2_MS = 20000.0

SIMULATE = """
[[compartment]]
name = "axon"
shape = "cylinder"
radius_um = 3.0
diffusivity_um2_per_ms = 2.0
t2_ms = {t2}
[acquisition]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000]
directions = 2
{checks}
"""


def _simulate(tmp_path, text: str, *flags: str) -> tuple[int, str]:
    config = tmp_path / "c.toml"
    config.write_text(text)
    out = tmp_path / "out.csv"
    argv = ["simulate", str(config), "-o", str(out), "--no-progress", "--overwrite", *flags]
    code = main(argv)
    return code, out


@pytest.mark.parametrize(
    ("checks", "flags"),
    [("", ("--allow", "t2")), ('[checks]\nallow = ["t2"]', ()), ("", ("--allow", "length,t2"))],
)
def test_simulate_accepts_an_impossible_t2_only_with_the_override(tmp_path, capsys, checks, flags):
    refused, _ = _simulate(tmp_path, SIMULATE.format(t2=LONG_T2_MS, checks=""))
    err = capsys.readouterr().err
    assert refused == 1 and "t2_ms" in err and "--allow t2" in err
    code, out = _simulate(tmp_path, SIMULATE.format(t2=LONG_T2_MS, checks=checks), *flags)
    assert code == 0, capsys.readouterr().err
    with open(out) as handle:
        signal = [float(row["signal_real"]) for row in csv.DictReader(handle)]
    # exp(-TE/T2) with TE = 40 ms and T2 = 20 s: the b = 0 signal is 0.998
    assert signal[0] == pytest.approx(np.exp(-0.04 / 20.0), rel=1e-12)


MESH = """
[mesh]
path = "nested.ply"
unit = "um"
length_scale_um = 2.5
permeability_um_per_ms = 0.1
[[compartment]]
name = "extra"
diffusivity_um2_per_ms = 2.0
t2_ms = {t2}
[[compartment]]
name = "intra"
diffusivity_um2_per_ms = 1.0
[acquisition]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000]
directions = [[1, 0, 0]]
{checks}
"""


def test_mesh_system_passes_the_override_to_the_coupled_parameters(tmp_path, capsys):
    """The [mesh] path checks its tissue values again in PermeableParameters: the
    [checks] table must reach it (an impossible T2 of the outer region)."""
    surfaces = concatenate([sphere(2 * um, subdivisions=1), sphere(4 * um, subdivisions=1)])
    save_surface(surfaces, tmp_path / "nested.ply", unit=um)
    refused, _ = _simulate(tmp_path, MESH.format(t2=LONG_T2_MS, checks=""))
    assert refused == 1 and "t2_ms" in capsys.readouterr().err
    allowed = MESH.format(t2=LONG_T2_MS, checks='[checks]\nallow = ["t2"]')
    code, out = _simulate(tmp_path, allowed)
    assert code == 0, capsys.readouterr().err
    with open(out) as handle:
        first = float(next(csv.DictReader(handle))["signal_real"])
    assert 0.0 < first <= 1.0


BIG_SWEEP = """
[[geometry]]
shape = "cylinder"
radius_um = 0.0005
length_scale_um = 0.0005
[tissue]
diffusivity_um2_per_ms = 2.0
[[acquisition]]
sequence = "pgse"
pulse_duration_ms = 10
pulse_separation_ms = 30
b_s_per_mm2 = [0, 1000]
directions = [[1, 0, 0]]
"""


def test_sweep_passes_the_override_to_the_shape_builder():
    """A cylinder of radius 0.5 nm (impossible as a length): the TOML reader refuses it
    without [checks]; with it, the engine's builder (``cylinder(..., plausibility=)``)
    accepts it too, and the same spec without the override is refused at the solve."""
    with pytest.raises(ValueError, match="radius_um"):
        spec_from_toml(BIG_SWEEP, registry=REGISTRY)
    spec = spec_from_toml('[checks]\nallow = ["length"]\n' + BIG_SWEEP, registry=REGISTRY)
    assert spec.plausibility == Plausibility(allow={"length"})
    assert spec == spec_from_toml(BIG_SWEEP, registry=REGISTRY, allow={"length"})
    sink = MemorySink()
    run_sweep(spec, sink, registry=REGISTRY)
    signals = sink.signals[0]
    assert signals.shape == (1, 2) and signals[0, 0].real == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ImplausibleValueError, match="radius"):
        run_sweep(replace(spec, plausibility=CHECKED), MemorySink(), registry=REGISTRY)


def test_sweep_passes_the_override_to_coupled_tissue_points():
    """sphere_in_sphere with an impossible T2 (20 s): the coupled eigenproblem's
    PermeableParameters are built with the sweep's override."""
    spec = coupled_spec(permeabilities=(1e-4,), t2=LONG_T2_MS * 1e-3)
    with pytest.raises(ImplausibleValueError, match="t2"):
        run_sweep(spec, MemorySink(), registry=REGISTRY)
    sink = MemorySink()
    run_sweep(replace(spec, plausibility=Plausibility(allow={"t2"})), sink, registry=REGISTRY)
    assert np.isfinite(sink.signals[0]).all()


def test_the_override_is_part_of_the_sweep_configuration_only_when_given():
    """The config hash of a sweep without an override is that of earlier versions."""
    spec = coupled_spec()
    assert "checks" not in spec.to_dict()
    allowed = replace(spec, plausibility=Plausibility(allow={"t2", "length"}))
    assert allowed.to_dict()["checks"] == {"allow": ["length", "t2"], "enabled": True}


def test_diffusion_weighting_threshold_is_ten_percent_of_free_water():
    """b_max = -ln(0.9) / 3e-9 m^2/s = 3.512e7 s/m^2 (35.1 s/mm^2): just below it the
    protocol is refused (quantity 'bvalue', overridable), just above accepted."""
    from mf_dmri.plausibility import check_diffusion_weighting

    edge = -np.log(0.9) / 3.0e-9
    check_diffusion_weighting([0.0, 1.001 * edge], "b")
    check_diffusion_weighting([0.0, 0.0], "b")  # b = 0 only: nothing to weight
    with pytest.raises(ImplausibleValueError, match="weights no diffusion") as info:
        check_diffusion_weighting([0.0, 0.999 * edge], "b")
    assert info.value.quantity == "bvalue"
    check_diffusion_weighting([0.999 * edge], "b", Plausibility(allow={"bvalue"}))
