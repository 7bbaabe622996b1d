"""Unit helpers.

The whole public API of mf_dmri is in SI units (m, s, T/m, m^2/s, s/m^2, m/s).  These
constants convert common lab units to SI by multiplication, e.g. ``5 * um`` is 5e-6 m and
``1000 * s_per_mm2`` is a b-value of 1e9 s/m^2.  Divide by them to convert back.
"""

from __future__ import annotations

#: metre [m]
m = 1.0
#: millimetre [m]
mm = 1e-3
#: micrometre [m]
um = 1e-6
#: nanometre [m]
nm = 1e-9
#: second [s]
s = 1.0
#: millisecond [s]
ms = 1e-3
#: microsecond [s]
us = 1e-6
#: tesla per metre [T/m]
T_per_m = 1.0
#: millitesla per metre [T/m]
mT_per_m = 1e-3
#: b-value unit s/mm^2 expressed in [s/m^2]
s_per_mm2 = 1e6
#: diffusivity unit um^2/ms expressed in [m^2/s]
um2_per_ms = 1e-9
#: diffusivity unit mm^2/s expressed in [m^2/s]
mm2_per_s = 1e-6
#: permeability unit um/ms expressed in [m/s]
um_per_ms = 1e-3
#: proton gyromagnetic ratio [rad/(s T)] (CODATA 2018 shielded-free value used by SpinDoctor)
GAMMA_PROTON = 2.6752218744e8
