"""Ellipsoidal cells by the finite-element path (no analytic Neumann eigenbasis exists).

A tetrahedral mesh of the unit ball is mapped by x -> R diag(a1, a2, a3) x; the mesh
eigen-data are differentiable with respect to the nodes (``mf_dmri.fem.differentiable``),
hence with respect to the semi-axes and the rotation.  Accuracy is that of the P1 mesh:
the signal converges at second order in the element size (tests/test_inverse_ellipsoid.py
measures it against the analytic sphere).  The mesh eigen-solver has a first-order
backward only: fits work (gradients are exact), the covariance falls back from the
Hessian to the Fisher information (``mf_dmri.inverse.fit``), and protocol design, which
needs second derivatives, is not available for this model.

Identifiability: the labels of the semi-axes and the rotation are not unique (permuting
axes with a matching rotation, or rotating a spheroid about its axis, gives the same
shape); fix the orientation or keep it near a reference to fit semi-axes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from mf_dmri._checks import DTYPE
from mf_dmri.fem.differentiable import differentiable_mesh_eigenbasis
from mf_dmri.geometry import sphere, tetrahedralize
from mf_dmri.inverse.kernels import ball_signal
from mf_dmri.inverse.parameters import Parameter
from mf_dmri.plausibility import UNCHECKED
from mf_dmri.signal import Compartment, signal

_UM = 1e-6
_D = 1e-9


def rotation_matrix(rotation_vector: torch.Tensor) -> torch.Tensor:
    """Rotation (3, 3) of the rotation vector ``rotation_vector`` (3,) [rad] (axis times
    angle), by the matrix exponential of its skew matrix (differentiable)."""
    w = rotation_vector
    zero = torch.zeros((), dtype=DTYPE)
    skew = torch.stack(
        [
            torch.stack([zero, -w[2], w[1]]),
            torch.stack([w[2], zero, -w[0]]),
            torch.stack([-w[1], w[0], zero]),
        ]
    )
    return torch.linalg.matrix_exp(skew)


@dataclass(frozen=True, eq=False)
class EllipsoidModel:
    """Impermeable ellipsoids (+ optional free-diffusion "ball"), finite-element path.

    Args:
        unit_nodes: (N, 3) nodes of a tetrahedral mesh of the unit ball [-].
        elements: (E, 4) tetrahedra.
        num_modes: Laplace eigenmodes kept (a fixed count, so the signal is smooth in the
            semi-axes).
        fit_orientation: fit the rotation vector (rotation_1..3 [rad], within +-pi/2).
        extra: "none" or "ball".
    """

    unit_nodes: np.ndarray
    elements: np.ndarray
    num_modes: int = 30
    fit_orientation: bool = False
    extra: str = "none"

    def __post_init__(self) -> None:
        nodes, elements = np.asarray(self.unit_nodes, dtype=np.float64), np.asarray(self.elements)
        if nodes.ndim != 2 or nodes.shape[1] != 3 or elements.ndim != 2 or elements.shape[1] != 4:
            raise ValueError("need a tetrahedral unit-ball mesh: nodes (N, 3), elements (E, 4)")
        if not 0.9 < np.linalg.norm(nodes, axis=1).max() < 1.1:
            raise ValueError("unit_nodes must mesh the unit ball (largest |x| near 1)")
        if self.extra not in ("none", "ball"):
            raise ValueError(f"extra must be 'none' or 'ball', got {self.extra!r}")
        if not (isinstance(self.num_modes, int) and self.num_modes >= 2):
            raise ValueError("num_modes must be an integer >= 2")

    @classmethod
    def from_unit_ball(
        cls, *, element_size: float = 0.35, subdivisions: int = 2, **options
    ) -> EllipsoidModel:
        """Mesh the unit ball (icosphere surface, netgen) with edges about ``element_size``
        [-] (relative to the radius) and build the model (``options`` as in the class)."""
        surface = sphere(1e-6, subdivisions=subdivisions)
        mesh = tetrahedralize(surface, length_scale=element_size * 1e-6)
        return cls(mesh.nodes / 1e-6, mesh.elements, **options)

    def parameters(
        self, fixed: Mapping[str, float] | None = None, **initial: float
    ) -> tuple[Parameter, ...]:
        """Default parameters (distinct starting semi-axes break the label symmetry)."""
        params = [Parameter("s0", initial.get("s0", 1.0), 0.0, float("inf"), unit="data")]
        for i, start in enumerate((3.5, 4.0, 4.5), start=1):
            name = f"semi_axis_{i}"
            params.append(
                Parameter(name, initial.get(name, start * _UM), 0.5 * _UM, 20 * _UM, unit="m")
            )
        params.append(
            Parameter(
                "intra_diffusivity",
                initial.get("intra_diffusivity", 1.7 * _D),
                0.1 * _D,
                3.5 * _D,
                unit="m^2/s",
            )
        )
        if self.fit_orientation:
            params += [
                Parameter(
                    f"rotation_{i}",
                    initial.get(f"rotation_{i}", 0.0),
                    -np.pi / 2,
                    np.pi / 2,
                    unit="rad",
                )
                for i in (1, 2, 3)
            ]
        if self.extra == "ball":
            params += [
                Parameter("intra_fraction", initial.get("intra_fraction", 0.5), 0.0, 1.0, unit="-"),
                Parameter(
                    "extra_diffusivity",
                    initial.get("extra_diffusivity", 1.0 * _D),
                    0.01 * _D,
                    3.5 * _D,
                    unit="m^2/s",
                ),
            ]
        fixed = fixed or {}
        unknown = set(fixed) - {p.name for p in params}
        if unknown:
            raise KeyError(f"cannot fix unknown parameters {sorted(unknown)}")
        return tuple(p.with_fixed(float(fixed[p.name])) if p.name in fixed else p for p in params)

    def nodes(self, values: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Mesh nodes (N, 3) [m] of the ellipsoid with the given parameter values."""
        axes = torch.stack(
            [torch.as_tensor(values[f"semi_axis_{i}"], dtype=DTYPE) for i in (1, 2, 3)]
        )
        nodes = torch.as_tensor(self.unit_nodes, dtype=DTYPE) * axes
        if self.fit_orientation:
            vector = torch.stack(
                [torch.as_tensor(values[f"rotation_{i}"], dtype=DTYPE) for i in (1, 2, 3)]
            )
            nodes = nodes @ rotation_matrix(vector).T
        return nodes

    def bind(self, protocol):
        """The forward model values -> signals (M,) for a fixed ``protocol``."""
        from mf_dmri.inverse.protocol import as_piece_groups

        groups = as_piece_groups(protocol)
        return lambda values: self._evaluate(values, groups)

    def __call__(self, values: Mapping[str, torch.Tensor], protocol) -> torch.Tensor:
        return self.bind(protocol)(values)

    def _evaluate(self, values, groups) -> torch.Tensor:
        values = {k: torch.as_tensor(v, dtype=DTYPE) for k, v in values.items()}
        missing = [p.name for p in self.parameters() if p.name not in values]
        if missing:
            raise KeyError(f"missing parameter values {missing}")
        basis = differentiable_mesh_eigenbasis(
            self.nodes(values), self.elements, num_modes=self.num_modes
        )
        compartment = Compartment(basis, values["intra_diffusivity"], plausibility=UNCHECKED)
        intra = torch.cat([signal(compartment, g).real for g in groups])
        if self.extra == "ball":
            hindered = torch.cat([ball_signal(g, values["extra_diffusivity"]) for g in groups])
            fraction = values["intra_fraction"]
            intra = fraction * intra + (1 - fraction) * hindered
        return values["s0"] * intra
