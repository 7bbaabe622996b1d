"""A signal with its error bar: :class:`SignalResult`.

Every number mf_dmri returns is right to a stated tolerance, carries an error bar, or is
refused.  :class:`SignalResult` is the error-bar form: per measurement, the computed signal
and the bounds of the four error sources of the matrix formalism, in the unit of the signal
(dimensionless when normalised):

* ``truncation_error``: the modes left out above the cutoff;
* ``discretisation_error``: the finite-element approximation of the eigenpairs of the mesh
  (zero for closed-form bases);
* ``propagation_error``: the time integration (the propagator's ``tolerance``);
* ``waveform_error``: a smooth waveform (OGSE) propagated as constant pieces
  (:mod:`mf_dmri.signal.waveform_error`; zero for piecewise-constant waveforms).

``error_bar`` is their sum and bounds ``|signal - exact|``, where "exact" is the Bloch-Torrey
signal of the domain as given: for a mesh, the polyhedron itself.  How well a polyhedron
approximates a curved cell is not part of the bar; it is reported with the mesh (volume and
area errors, :mod:`mf_dmri.geometry.quality`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mf_dmri._checks import CDTYPE, DTYPE

#: The error terms whose sum is the bar, in the order of the docstring.
_ERROR_TERMS = ("truncation_error", "discretisation_error", "propagation_error", "waveform_error")


@dataclass(frozen=True)
class SignalResult:
    """The signal of M measurements with its error bar.

    Args:
        signal: complex128 (M,) signal (dimensionless if normalised, else [m^3]).
        truncation_error: float64 (M,) bound of the mode-truncation error [signal unit].
        discretisation_error: float64 (M,) bound of the finite-element error [signal unit].
        propagation_error: float64 (M,) bound of the time-integration error [signal unit].
        tolerance: the requested absolute tolerance on the signal [signal unit].
        num_modes: modes kept per restricted factor, in compartment order (one entry
            for a coupled basis).
        max_eigenvalues: the cutoff of each restricted factor [1/m^2], same order (for a
            coupled basis: its largest rate kept [1/s]).
        waveform_error: float64 (M,) bound of the error of propagating a smooth waveform
            as constant pieces [signal unit]; None: zero (piecewise-constant waveforms).
    """

    signal: torch.Tensor
    truncation_error: torch.Tensor
    discretisation_error: torch.Tensor
    propagation_error: torch.Tensor
    tolerance: float
    num_modes: tuple[int, ...]
    max_eigenvalues: tuple[float, ...]
    waveform_error: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.signal.dtype != CDTYPE or self.signal.ndim != 1:
            raise ValueError("signal must be a complex128 tensor of shape (M,)")
        shape = self.signal.shape
        if self.waveform_error is None:
            zero = torch.zeros(shape, dtype=DTYPE, device=self.signal.device)
            object.__setattr__(self, "waveform_error", zero)
        for name in _ERROR_TERMS:
            value = getattr(self, name)
            if value.dtype != DTYPE or value.shape != shape:
                raise ValueError(f"{name} must be a float64 tensor of shape {tuple(shape)}")
            if bool((value < 0).any()) or not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} must be finite and non-negative")
        if not (self.tolerance > 0):
            raise ValueError(f"tolerance must be positive, got {self.tolerance!r}")
        if len(self.num_modes) != len(self.max_eigenvalues):
            raise ValueError("num_modes and max_eigenvalues need one entry per factor")

    @property
    def error_bar(self) -> torch.Tensor:
        """float64 (M,): truncation + discretisation + propagation + waveform [signal unit]."""
        return (
            self.truncation_error
            + self.discretisation_error
            + self.propagation_error
            + self.waveform_error
        )

    @property
    def max_error_bar(self) -> float:
        """The largest error bar over the measurements [signal unit]."""
        return float(self.error_bar.max()) if self.error_bar.numel() else 0.0

    @property
    def within_tolerance(self) -> bool:
        """True when every measurement's error bar is at most ``tolerance``."""
        return self.max_error_bar <= self.tolerance
