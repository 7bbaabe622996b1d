"""A-stable one-step time-stepping schemes for linear systems ``M dm/dt = -B m``.

On a linear autonomous system every Runge-Kutta method is its *stability function*
``R(z)`` applied to ``K = -h M^-1 B``: ``m_{n+1} = R(h K) m_n``.  Writing ``R`` in partial
fractions, ``R(z) = c0 + sum_j r_j / (z - z_j)``, one step is

    m_{n+1} = c0 m_n - sum_j r_j (z_j M + h B)^-1 (M m_n),

one sparse solve per pole ``z_j``, with one factorisation of ``z_j M + h B`` per distinct
(pole, step, gradient).  The schemes (Hairer & Wanner, Solving ODEs II, 1996, Sec. IV.3-5):

* ``backward-euler``: R = 1/(1 - z), order 1, L-stable.
* ``crank-nicolson``: R = (1 + z/2)/(1 - z/2), the (1,1) Pade approximant (the implicit
  midpoint / trapezoidal rule), order 2, A-stable, |R(-inf)| = 1 (no damping of stiff modes).
* ``radau-iia``: the 2-stage Radau IIA method, R = (1 + z/3)/(1 - 2z/3 + z^2/6), order 3,
  L-stable.
* ``gauss-legendre``: the 2-stage Gauss-Legendre method, R = (1 + z/2 + z^2/12)/(1 - z/2 +
  z^2/12), the (2,2) Pade approximant, order 4, A-stable, |R(-inf)| = 1.

The polynomials have real coefficients, so complex poles come in conjugate pairs; the
partner of each pole is recorded so that a factorisation can serve its conjugate system.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RationalScheme:
    """Partial-fraction form of a stability function R(z) = c0 + sum_j r_j / (z - z_j).

    Args:
        name: the scheme's name.
        order: classical order of convergence p (error O(h^p)) [-].
        constant: c0 = R(infinity) [-].
        poles: (J,) complex poles z_j [-].
        residues: (J,) complex residues r_j [-].
        partner: (J,) index of the pole equal to conj(z_j) (itself for a real pole).
    """

    name: str
    order: int
    constant: float
    poles: tuple[complex, ...]
    residues: tuple[complex, ...]
    partner: tuple[int, ...]

    def stability(self, z: np.ndarray) -> np.ndarray:
        """R(z) evaluated from the partial fractions (for tests and diagnostics)."""
        z = np.asarray(z, dtype=complex)
        total = np.full_like(z, self.constant)
        for pole, residue in zip(self.poles, self.residues, strict=True):
            total = total + residue / (z - pole)
        return total


def _from_polynomials(name: str, order: int, numerator, denominator) -> RationalScheme:
    """Partial fractions of numerator/denominator (coefficients in increasing powers of z),
    with conjugate poles made exact conjugates of each other."""
    num = np.polynomial.Polynomial(numerator)
    den = np.polynomial.Polynomial(denominator)
    constant = num.coef[-1] / den.coef[-1] if num.degree() == den.degree() else 0.0
    roots = den.roots().astype(complex)
    derivative = den.deriv()
    poles: list[complex] = []
    for root in sorted(roots, key=lambda r: (round(r.real, 12), -r.imag)):
        if abs(root.imag) <= 1e-14 * abs(root):
            root = complex(root.real, 0.0)
        elif root.imag < 0 and any(abs(p - root.conjugate()) < 1e-10 for p in poles):
            root = next(p for p in poles if abs(p - root.conjugate()) < 1e-10).conjugate()
        poles.append(complex(root))
    residues = [complex(num(z) / derivative(z)) for z in poles]
    partner = []
    for j, pole in enumerate(poles):
        matches = [k for k, other in enumerate(poles) if other == pole.conjugate()]
        partner.append(matches[0] if matches else j)
    for j, k in enumerate(partner):  # residues of conjugate poles: exact conjugates
        if k < j:
            residues[j] = residues[k].conjugate()
    return RationalScheme(
        name, order, float(constant), tuple(poles), tuple(residues), tuple(partner)
    )


SCHEMES: dict[str, RationalScheme] = {
    scheme.name: scheme
    for scheme in (
        _from_polynomials("backward-euler", 1, [1.0], [1.0, -1.0]),
        _from_polynomials("crank-nicolson", 2, [1.0, 0.5], [1.0, -0.5]),
        _from_polynomials("radau-iia", 3, [1.0, 1.0 / 3.0], [1.0, -2.0 / 3.0, 1.0 / 6.0]),
        _from_polynomials("gauss-legendre", 4, [1.0, 0.5, 1.0 / 12.0], [1.0, -0.5, 1.0 / 12.0]),
    )
}


def get_scheme(name: str) -> RationalScheme:
    """The scheme called ``name`` (see :data:`SCHEMES`), with a clear error otherwise."""
    if name not in SCHEMES:
        raise ValueError(f"unknown time-stepping scheme {name!r}; choose one of {list(SCHEMES)}")
    return SCHEMES[name]
