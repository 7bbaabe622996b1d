"""Parametric tissue models for fitting: cylinders (single radius or gamma-distributed),
spheres, and hindered extra-cellular compartments, from any multi-shell PGSE/OGSE data.

A model is called as ``model(values, protocol)`` with ``values`` a dict of named physical
parameters (0-d tensors, SI units; see ``model.parameters()``) and returns the real signal
(M,) in data units: s0 times the normalised signal.  ``model.bind(protocol)`` gives the
one-argument forward model that ``mf_dmri.inverse.fit`` takes.

All compartments share the echo time's T2 weighting (it is absorbed in s0): data acquired
with several echo times must be normalised per echo time (divide by that echo time's b = 0
signal and fix s0 = 1), or the compartments' different T2 will bias the fractions.

Ellipsoids have no analytic Neumann eigenbasis: ``mf_dmri.inverse.ellipsoid.EllipsoidModel``
takes the finite-element path (see docs/inverse.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from mf_dmri._checks import DTYPE, as_real_tensor
from mf_dmri.analytic import frame_from_axis
from mf_dmri.inverse.kernels import ball_signal, cylinder_signal, sphere_signal, zeppelin_signal
from mf_dmri.inverse.parameters import Parameter
from mf_dmri.inverse.protocol import as_piece_groups
from mf_dmri.inverse.radii import gamma_volume_nodes

#: Default dimensionless mode cutoffs (max_eigenvalue * radius^2) for fitting.  The PGSE
#: signals differ from those of a 3x finer basis by less than 1e-4 (of the b = 0 signal)
#: for radii up to 15 um, G <= 300 mT/m, delta <= 20 ms, Delta <= 60 ms
#: (tests/test_inverse_models.py), far below any realistic noise level.
MODEL_CUTOFF = {"disk": 100.0, "ball": 100.0}
EXTRA_COMPARTMENTS = ("none", "zeppelin", "ball")

_UM = 1e-6
_D = 1e-9


def _common(initial: Mapping[str, float]) -> list[Parameter]:
    return [Parameter("s0", initial.get("s0", 1.0), 0.0, float("inf"), unit="data")]


def _extra(kind: str, initial: Mapping[str, float]) -> list[Parameter]:
    if kind == "none":
        return []
    params = [Parameter("intra_fraction", initial.get("intra_fraction", 0.5), 0.0, 1.0, unit="-")]
    if kind == "zeppelin":
        params += [
            Parameter(
                "extra_parallel_diffusivity",
                initial.get("extra_parallel_diffusivity", 1.7 * _D),
                0.05 * _D,
                3.5 * _D,
                unit="m^2/s",
            ),
            Parameter(
                "extra_perpendicular_diffusivity",
                initial.get("extra_perpendicular_diffusivity", 0.6 * _D),
                0.01 * _D,
                3.5 * _D,
                unit="m^2/s",
            ),
        ]
    else:
        params.append(
            Parameter(
                "extra_diffusivity",
                initial.get("extra_diffusivity", 1.0 * _D),
                0.01 * _D,
                3.5 * _D,
                unit="m^2/s",
            )
        )
    return params


def _apply(params: list[Parameter], fixed: Mapping[str, float]) -> tuple[Parameter, ...]:
    names = {p.name for p in params}
    unknown = set(fixed) - names
    if unknown:
        raise KeyError(f"cannot fix unknown parameters {sorted(unknown)}; known: {sorted(names)}")
    return tuple(p.with_fixed(float(fixed[p.name])) if p.name in fixed else p for p in params)


def _check_extra(kind: str) -> None:
    if kind not in EXTRA_COMPARTMENTS:
        raise ValueError(f"extra must be one of {EXTRA_COMPARTMENTS}, got {kind!r}")


class _Model:
    """Shared evaluation: per measurement group, concatenated, times s0."""

    def bind(self, protocol) -> Callable[[Mapping[str, torch.Tensor]], torch.Tensor]:
        """The forward model values -> signals (M,) for a fixed ``protocol``."""
        groups = as_piece_groups(protocol)
        return lambda values: self._evaluate(values, groups)

    def __call__(self, values: Mapping[str, torch.Tensor], protocol) -> torch.Tensor:
        return self._evaluate(values, as_piece_groups(protocol))

    def _evaluate(self, values, groups) -> torch.Tensor:
        values = {k: torch.as_tensor(v, dtype=DTYPE) for k, v in values.items()}
        missing = [p.name for p in self.parameters() if p.name not in values]
        if missing:
            raise KeyError(f"missing parameter values {missing}")
        normalised = torch.cat([self.normalised_signal(values, g) for g in groups])
        return values["s0"] * normalised

    def _mix_extra(self, values, pieces, intra: torch.Tensor, axis) -> torch.Tensor:
        if self.extra == "none":
            return intra
        fraction = values["intra_fraction"]
        if self.extra == "zeppelin":
            hindered = zeppelin_signal(
                pieces,
                axis,
                values["extra_parallel_diffusivity"],
                values["extra_perpendicular_diffusivity"],
            )
        else:
            hindered = ball_signal(pieces, values["extra_diffusivity"])
        return fraction * intra + (1 - fraction) * hindered


@dataclass(frozen=True)
class CylinderModel(_Model):
    """Impermeable cylinders (axons) plus an optional hindered extra-axonal compartment.

    Args:
        axis: (3,) fibre axis [-]; fixed, or the reference about which the axis is fitted.
        fit_axis: fit the axis as normalise(axis + axis_tilt_1 e1 + axis_tilt_2 e2), with
            (e1, e2) orthonormal to ``axis`` and the tilts in [-1, 1] (up to 45 degrees;
            start from a DTI estimate, ``mf_dmri.inverse.estimate_fibre_axis``).
        extra: "none", "zeppelin" (axially symmetric tensor along the axis) or "ball".
        radius_distribution: "single" (parameter ``radius``) or "gamma" (``mean_radius``
            and ``radius_shape`` k; the signal is the volume-weighted average over radii).
        quadrature_nodes: Gauss-Laguerre nodes for the gamma average.
        unit_cutoff: modes kept per radius: eigenvalue <= unit_cutoff / radius^2 [-].
    """

    axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    fit_axis: bool = False
    extra: str = "none"
    radius_distribution: str = "single"
    quadrature_nodes: int = 8
    unit_cutoff: float = MODEL_CUTOFF["disk"]

    def __post_init__(self) -> None:
        axis = as_real_tensor(self.axis, "axis").reshape(-1)
        if axis.numel() != 3 or float(torch.linalg.vector_norm(axis)) == 0:
            raise ValueError("axis must be a non-zero 3-vector")
        object.__setattr__(self, "axis", tuple(float(a) for a in axis / axis.norm()))
        _check_extra(self.extra)
        if self.radius_distribution not in ("single", "gamma"):
            raise ValueError("radius_distribution must be 'single' or 'gamma'")
        if not self.unit_cutoff > 0:
            raise ValueError("unit_cutoff must be positive [-]")

    def parameters(
        self, fixed: Mapping[str, float] | None = None, **initial: float
    ) -> tuple[Parameter, ...]:
        """Default parameters with bounds; ``initial`` overrides starting values [SI],
        ``fixed`` maps names to values held fixed [SI]."""
        params = _common(initial)
        if self.radius_distribution == "single":
            params.append(
                Parameter("radius", initial.get("radius", 4 * _UM), 0.1 * _UM, 20 * _UM, unit="m")
            )
        else:
            params += [
                Parameter(
                    "mean_radius",
                    initial.get("mean_radius", 3 * _UM),
                    0.1 * _UM,
                    15 * _UM,
                    unit="m",
                ),
                Parameter("radius_shape", initial.get("radius_shape", 8.0), 1.0, 200.0, unit="-"),
            ]
        params.append(
            Parameter(
                "intra_diffusivity",
                initial.get("intra_diffusivity", 1.7 * _D),
                0.1 * _D,
                3.5 * _D,
                unit="m^2/s",
            )
        )
        if self.fit_axis:
            params += [
                Parameter("axis_tilt_1", initial.get("axis_tilt_1", 0.0), -1.0, 1.0, unit="-"),
                Parameter("axis_tilt_2", initial.get("axis_tilt_2", 0.0), -1.0, 1.0, unit="-"),
            ]
        return _apply(params + _extra(self.extra, initial), fixed or {})

    def fibre_axis(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unit fibre axis (3,) [-] for the parameter ``values``."""
        reference = torch.tensor(self.axis, dtype=DTYPE)
        if not self.fit_axis:
            return reference
        frame = frame_from_axis(reference)
        axis = reference + values["axis_tilt_1"] * frame[0] + values["axis_tilt_2"] * frame[1]
        return axis / torch.linalg.vector_norm(axis)

    def normalised_signal(self, values, pieces) -> torch.Tensor:
        """Signal with s0 = 1, real (M,), for one group of measurements."""
        axis = self.fibre_axis(values)
        diffusivity = values["intra_diffusivity"]
        if self.radius_distribution == "single":
            intra = cylinder_signal(
                pieces, values["radius"], axis, diffusivity, unit_cutoff=self.unit_cutoff
            )
        else:
            radii, weights = gamma_volume_nodes(
                values["mean_radius"], values["radius_shape"], self.quadrature_nodes
            )
            intra = sum(
                weights[i]
                * cylinder_signal(pieces, radii[i], axis, diffusivity, unit_cutoff=self.unit_cutoff)
                for i in range(radii.numel())
            )
        return self._mix_extra(values, pieces, intra, axis)


@dataclass(frozen=True)
class SphereModel(_Model):
    """Impermeable spheres (cells) plus an optional free-diffusion ("ball") compartment.

    Args:
        extra: "none" or "ball".
        unit_cutoff: modes kept: eigenvalue <= unit_cutoff / radius^2 [-].
    """

    extra: str = "none"
    unit_cutoff: float = MODEL_CUTOFF["ball"]

    def __post_init__(self) -> None:
        if self.extra not in ("none", "ball"):
            raise ValueError(f"extra must be 'none' or 'ball' for spheres, got {self.extra!r}")
        if not self.unit_cutoff > 0:
            raise ValueError("unit_cutoff must be positive [-]")

    def parameters(
        self, fixed: Mapping[str, float] | None = None, **initial: float
    ) -> tuple[Parameter, ...]:
        """Default parameters with bounds (see ``CylinderModel.parameters``)."""
        params = _common(initial) + [
            Parameter("radius", initial.get("radius", 5 * _UM), 0.1 * _UM, 30 * _UM, unit="m"),
            Parameter(
                "intra_diffusivity",
                initial.get("intra_diffusivity", 1.7 * _D),
                0.1 * _D,
                3.5 * _D,
                unit="m^2/s",
            ),
        ]
        return _apply(params + _extra(self.extra, initial), fixed or {})

    def normalised_signal(self, values, pieces) -> torch.Tensor:
        intra = sphere_signal(
            pieces, values["radius"], values["intra_diffusivity"], unit_cutoff=self.unit_cutoff
        )
        return self._mix_extra(values, pieces, intra, None)
