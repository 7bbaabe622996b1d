"""Compiled meshers print nothing on stdout: their output goes to logging."""

import logging
import os

from mf_dmri.geometry import generators, tetrahedralize
from mf_dmri.geometry.native_output import native_output_to_log
from mf_dmri.units import um


def test_descriptor_output_is_logged_not_printed(capfd, caplog):
    logger = logging.getLogger("test.native")
    with caplog.at_level(logging.INFO, logger="test.native"):
        with native_output_to_log(logger):
            os.write(1, b"native line one\n  native line two\n")
    assert capfd.readouterr().out == ""
    assert [r.getMessage() for r in caplog.records] == ["native line one", "native line two"]


def test_netgen_prints_nothing_on_stdout(capfd, caplog):
    with caplog.at_level(logging.INFO, logger="mf_dmri.geometry.tetra"):
        volume = tetrahedralize(generators.sphere(5 * um, subdivisions=2), length_scale=2.5 * um)
    assert len(volume.elements) > 0
    assert capfd.readouterr().out == ""
    assert any("RestrictLocalH" in r.getMessage() for r in caplog.records)
