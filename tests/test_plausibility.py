"""Every physical input class is checked against the ranges of biological dMRI
(``mf_dmri.plausibility.RANGES``): one row per input class with the message a user sees,
at the library entry points and in the TOML layer, and the explicit override."""

import math
import warnings
from pathlib import Path

import pytest
import torch

from mf_dmri.analytic import cylinder, slab, sphere
from mf_dmri.eigenbasis import Eigenbasis
from mf_dmri.fem.permeable_parameters import PermeableParameters
from mf_dmri.io.config import load_config
from mf_dmri.io.sweep_toml import parse_directions
from mf_dmri.io.vocabulary import ConfigError
from mf_dmri.plausibility import (
    UNCHECKED,
    ImplausibleValueError,
    Plausibility,
    PlausibilityWarning,
    check_plausible,
)
from mf_dmri.sequences import OGSE, PGSE, Acquisition, SampledWaveform, multi_shell
from mf_dmri.sequences.acquisition import NotRefocusedError
from mf_dmri.signal import Compartment
from mf_dmri.units import ms, um

X = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)


def _mesh_like(size: float) -> Eigenbasis:
    """A 3-D basis of one mode whose volume is size^3 (a mesh read in the wrong unit)."""
    return Eigenbasis(
        torch.zeros(1, dtype=torch.float64),
        torch.zeros(3, 1, 1, dtype=torch.float64),
        torch.tensor([size**1.5], dtype=torch.float64),
        torch.tensor(size**3, dtype=torch.float64),
        torch.eye(3, dtype=torch.float64),
        label="mesh",
    )


# (input class, call that builds it with a wrong unit, error or warning, message fragments)
RAISES = [
    ("sphere radius", lambda p: sphere(5.0, plausibility=p), ["radius = 5 m", "5 um = 5e-06 m"]),
    ("cylinder radius", lambda p: cylinder(3.0, plausibility=p), ["3 um = 3e-06 m"]),
    (
        "closed cylinder length",
        lambda p: cylinder(3 * um, length=20.0, plausibility=p),
        ["length = 20 m"],
    ),
    ("slab width", lambda p: slab(1e-12, plausibility=p), ["= 1e-12 m", "impossible"]),
    (
        "mesh extent (um read as m)",
        lambda p: Compartment(_mesh_like(10.0), 2e-9, plausibility=p),
        ["extent of the 3-D domain", "10 um = 1e-05 m"],
    ),
    (
        "diffusivity",
        lambda p: Compartment(sphere(5 * um), 2.0, plausibility=p),
        ["diffusivity = 2 m^2/s", "2 um^2/ms = 2e-09 m^2/s"],
    ),
    (
        "diffusivity in mm^2/s",
        lambda p: Compartment(sphere(5 * um), 2e-3, plausibility=p),
        ["0.002 mm^2/s = 2e-09 m^2/s"],
    ),
    (
        "t2",
        lambda p: Compartment(sphere(5 * um), 2e-9, t2=80.0, plausibility=p),
        ["t2 = 80 s", "80 ms = 0.08 s"],
    ),
    (
        "permeability",
        lambda p: PermeableParameters(2e-9, permeability=20.0, plausibility=p),
        ["permeability = 20 m/s", "20 um/s = 2e-05 m/s"],
    ),
    (
        "surface relaxivity",
        lambda p: PermeableParameters(2e-9, surface_relaxivity=5.0, plausibility=p),
        ["surface_relaxivity = 5 m/s"],
    ),
    (
        "b-value in s/m^2",
        lambda p: Acquisition.from_bvalues(PGSE(10 * ms, 30 * ms), [1000.0], X, plausibility=p),
        ["bvalues = 1000 s/m^2", "1000 s/mm^2 = 1e+09 s/m^2", "E = exp(-b D) = 0.999997"],
    ),
    (
        "b-value converted twice",
        lambda p: Acquisition.from_bvalues(PGSE(10 * ms, 30 * ms), [1e15], X, plausibility=p),
        ["bvalues = 1e+15 s/m^2", "impossible"],
    ),
    (
        "gradient amplitude in mT/m",
        lambda p: Acquisition(PGSE(10 * ms, 30 * ms), X, [40.0], plausibility=p),
        ["amplitudes = 40 T/m", "40 mT/m = 0.04 T/m"],
    ),
    (
        "pulse duration",
        lambda p: PGSE(10.0, 30.0, plausibility=p),
        ["pulse_duration = 10 s", "10 ms = 0.01 s"],
    ),
    (
        "pulse separation",
        lambda p: PGSE(10 * ms, 30.0, plausibility=p),
        ["pulse_separation = 30 s", "30 ms = 0.03 s"],
    ),
    (
        "echo time",
        lambda p: Acquisition(PGSE(10 * ms, 30 * ms), X, [0.04], echo_time=80.0, plausibility=p),
        ["echo_time = 80 s", "80 ms = 0.08 s"],
    ),
    (
        "OGSE frequency",
        lambda p: OGSE(1e-4, 2e-4, 20, plausibility=p),
        ["num_periods / pulse_duration = 200000 Hz", "impossible"],
    ),
]

WARNS = [
    ("large compartment", lambda p: sphere(2e-3, plausibility=p), ["radius = 0.002 m", "unusual"]),
    (
        "fast diffusivity",
        lambda p: Compartment(sphere(5 * um), 2e-6, plausibility=p),
        ["2e-06 m^2/s"],
    ),
    (
        "tiny b-value",
        lambda p: Acquisition.from_bvalues(PGSE(10 * ms, 30 * ms), [5e5], X, plausibility=p),
        ["500000 s/m^2"],
    ),
    (
        "strong gradient",
        lambda p: Acquisition(PGSE(10 * ms, 30 * ms), X, [3.0], plausibility=p),
        ["amplitudes = 3 T/m"],
    ),
    (
        "short T2",
        lambda p: Compartment(sphere(5 * um), 2e-9, t2=1e-3, plausibility=p),
        ["t2 = 0.001 s"],
    ),
]


@pytest.mark.parametrize("label, build, fragments", RAISES, ids=[r[0] for r in RAISES])
def test_impossible_inputs_raise_with_the_likely_unit_mistake(label, build, fragments):
    with pytest.raises(ImplausibleValueError) as info:
        build(None)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (label, message)
    assert "Plausibility(allow=" in message  # the override is named
    quantity = info.value.quantity
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)
        # intended: accepted silently (timings and amplitudes follow from the value)
        build(Plausibility(allow={quantity, "gradient", "diffusion_time"}))
        build(UNCHECKED)


@pytest.mark.parametrize("label, build, fragments", WARNS, ids=[w[0] for w in WARNS])
def test_unusual_inputs_warn(label, build, fragments):
    with pytest.warns(PlausibilityWarning) as record:
        build(None)
    message = str(record[0].message)
    for fragment in fragments:
        assert fragment in message, (label, message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)
        build(UNCHECKED)


def test_typical_inputs_are_silent_and_zero_is_allowed_where_physical():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)
        Compartment(cylinder(0.5 * um), 2e-9, t2=0.08)
        Compartment(sphere(5 * um), 0.5e-9, t2=math.inf)
        Acquisition.from_bvalues(
            PGSE(10 * ms, 30 * ms),
            [0.0, 1e9, 3e9],
            X.expand(3, 3) * torch.tensor([[0.0], [1.0], [1.0]], dtype=torch.float64),
        )
        PermeableParameters(2e-9, permeability=0.0, surface_relaxivity=0.0)
        check_plausible("gradient", 0.0, "amplitudes")


def test_unknown_override_quantity_is_refused():
    with pytest.raises(ValueError, match="unknown quantities \\['lenght'\\]"):
        Plausibility(allow={"lenght"})


def test_waveform_not_refocused_needs_the_flag():
    shape = SampledWaveform(torch.tensor([1.0, 1.0, 0.0, -1.0]), 2 * ms)
    with pytest.raises(
        NotRefocusedError, match=r"not refocused.*channel\(s\) \[0\].*allow_unrefocused=True"
    ):
        Acquisition(shape, X, [0.05])
    acquisition = Acquisition(shape, X, [0.05], allow_unrefocused=True)
    assert acquisition.num_measurements == 1
    refocused = SampledWaveform(torch.tensor([1.0, 1.0, 0.0, -1.0, -1.0]), 2 * ms)
    Acquisition(refocused, X, [0.05])
    Acquisition(OGSE(20 * ms, 25 * ms, 2, "sin"), X, [0.05])


@pytest.mark.parametrize("value", ["lots", 30.5, 30.0, True, 0])
def test_integer_fields_refuse_non_integers(value):
    with pytest.raises((TypeError, ValueError), match="num_directions must be a positive integer"):
        multi_shell(PGSE(10 * ms, 30 * ms), [1e9], value)
    if value != 0:
        with pytest.raises(TypeError, match="num_periods must be a positive integer"):
            OGSE(20 * ms, 25 * ms, value)
    with pytest.raises(ValueError, match=f"directions .*got {value!r}"):
        parse_directions(value, "[acquisition]")
    with pytest.raises(ValueError, match=f"needs a positive whole count .*got {value!r}"):
        parse_directions({"fibonacci": value}, "[acquisition]")


CONFIG = """
{checks}
[[compartment]]
name = "axon"
shape = "cylinder"
radius_um = {radius}
diffusivity_um2_per_ms = 2.0

[acquisition]
sequence = "{sequence}"
pulse_duration_ms = {delta}
pulse_separation_ms = 30.0
b_s_per_mm2 = [0, {b}]
directions = {directions}
{extra}
"""


def _config(tmp_path: Path, **changes) -> Path:
    values = dict(
        checks="", radius=2.0, sequence="pgse", delta=10.0, b=1000, directions=3, extra=""
    )
    values.update(changes)
    path = tmp_path / "simulate.toml"
    path.write_text(CONFIG.format(**values))
    return path


TOML_ROWS = [
    (
        "SI under _ms",
        dict(delta=0.01),
        PlausibilityWarning,
        ["[acquisition] pulse_duration_ms = 0.01 ms", "write pulse_duration_ms = 10"],
    ),
    (
        "SI under _um",
        dict(radius=2e-6),
        ConfigError,
        ["radius_um = 2e-06 um", "write radius_um = 2"],
    ),
    (
        "b in s/m^2 under s_per_mm2",
        dict(b=1e9),
        ConfigError,
        ["b_s_per_mm2 = 1e+09 s_per_mm2", "write b_s_per_mm2 = 1000"],
    ),
    (
        "directions not a count",
        dict(directions='"lots"'),
        ValueError,
        ["directions must be a positive whole count", "'lots'"],
    ),
    ("directions fractional", dict(directions=30.5), ValueError, ["got 30.5"]),
    (
        "num_periods fractional",
        dict(sequence="ogse_cos", extra="num_periods = 2.5"),
        ConfigError,
        ["num_periods must be a whole number of periods, got 2.5"],
    ),
]


@pytest.mark.parametrize(
    "label, changes, kind, fragments", TOML_ROWS, ids=[r[0] for r in TOML_ROWS]
)
def test_toml_keys_name_the_key_and_the_unit_mistake(tmp_path, label, changes, kind, fragments):
    path = _config(tmp_path, **changes)
    if issubclass(kind, Warning):  # then the b-values need an impossible gradient
        with pytest.warns(kind) as record, pytest.raises(ConfigError, match="timing"):
            load_config(path)
        message = " ".join(str(r.message) for r in record if issubclass(r.category, kind))
    else:
        with pytest.raises(kind) as info:
            load_config(path)
        message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (label, message)


def test_toml_checks_table_is_the_override(tmp_path):
    path = _config(tmp_path, radius=20000.0, checks='[checks]\nallow = ["length"]')
    with warnings.catch_warnings():
        warnings.simplefilter("error", PlausibilityWarning)
        load_config(path)
    with pytest.raises(ConfigError, match="unknown quantities"):
        load_config(_config(tmp_path, checks='[checks]\nallow = ["radius"]'))
