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
    # a thin plate: its thickness sizes bind, so netgen prints its RestrictLocalH notice
    # (a sphere's sizes no longer bind and are not passed: nothing would be printed)
    plate = generators.box((4 * um, 4 * um, 0.6 * um), edge_length=1.2 * um)
    with caplog.at_level(logging.INFO, logger="mf_dmri.geometry.tetra"):
        volume = tetrahedralize(plate)
    assert len(volume.elements) > 0
    assert capfd.readouterr().out == ""
    assert any("RestrictLocalH" in r.getMessage() for r in caplog.records)
