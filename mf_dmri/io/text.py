"""Reading text input files (configs, gradient tables) with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path


def read_text(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of the ``what`` file at ``path``; a binary or otherwise encoded file
    is refused naming the file and the offending byte (ValueError)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} file {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at position "
            f"{exc.start}): is it the right file? Save it as plain UTF-8 text"
        ) from exc
