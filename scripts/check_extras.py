"""Fail (exit 1) when an optional package that mf_dmri advertises is not importable.

Each module is listed with the extra of pyproject.toml that installs it; the message names
every missing one and the pip command.  MF_DMRI_OPTIONAL_MISSING_OK (comma-separated module
names) excuses modules that have no wheel for this platform; CI sets none.
"""

from __future__ import annotations

import importlib.util
import os
import sys

#: module -> the extra that installs it (pip install -e ".[extra]")
ADVERTISED = {
    "h5py": "sweep",
    "tqdm": "sweep",
    "ray": "ray",
    "pyarrow": "parquet",
    "dipy": "dipy",
    "pytetwild": "mesh",
    "pyvista": "mesh",
    "tetgen": "tetgen",
    "pypardiso": "pardiso",
    "navis": "test",
    "pandas": "test",
    "netgen": "core (netgen-mesher)",
}


def missing_modules(excused: set[str]) -> list[str]:
    """The advertised modules that cannot be imported and are not excused."""
    return [
        name
        for name in ADVERTISED
        if name not in excused and importlib.util.find_spec(name) is None
    ]


def main() -> int:
    excused = {m for m in os.environ.get("MF_DMRI_OPTIONAL_MISSING_OK", "").split(",") if m}
    missing = missing_modules(excused)
    if missing:
        extras = sorted({ADVERTISED[m] for m in missing})
        print(
            f"missing advertised optional packages: {', '.join(missing)}; install them with "
            f"bash scripts/install.sh ci (extras {', '.join(extras)})",
            file=sys.stderr,
        )
        return 1
    print(f"all {len(ADVERTISED)} advertised optional packages import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
