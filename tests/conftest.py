"""Session checks and shared fixtures.  With MF_DMRI_NO_SKIPS=1 (set by .ci/run) a test
skipped because an optional package is missing fails the run: CI must test every advertised
feature."""

from __future__ import annotations

import os
import re

import pytest
from propagator_cases import generic_fem_basis

#: Skip reasons that mean "an optional package is not installed".
MISSING_PACKAGE = re.compile(r"not installed|missing|could not import|No module named", re.I)


@pytest.fixture(scope="module")
def fem_basis():
    """The generic FEM basis of the propagator tests (tests/propagator_cases.py)."""
    return generic_fem_basis()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MF_DMRI_NO_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    missing = []
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report)
        if MISSING_PACKAGE.search(reason):
            missing.append(f"{report.nodeid}: {reason}")
    if missing:
        if reporter is not None:
            reporter.write_line(
                "MF_DMRI_NO_SKIPS: tests skipped for a missing optional package:\n  "
                + "\n  ".join(missing),
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
