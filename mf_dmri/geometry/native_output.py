"""Route what compiled libraries (netgen) print on the process's stdout to logging.

netgen writes warnings such as "RestrictLocalH called" to file descriptor 1 from C++, past
Python's ``sys.stdout``; a library must not print, and a command's stdout must hold only
its results.  :func:`native_output_to_log` points descriptor 1 at a temporary file for the
duration of a call and logs each captured line.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _flush_c_stdio() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # pragma: no cover - no C runtime symbol table
        pass


@contextmanager
def native_output_to_log(logger: logging.Logger, level: int = logging.INFO) -> Iterator[None]:
    """Capture descriptor-1 output of the enclosed calls and log it line by line."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no usable descriptor 1 (embedded interpreter)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            _flush_c_stdio()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    logger.log(level, "%s", line.strip())
