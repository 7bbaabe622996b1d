"""Atomic writes and sealed files: every stored artefact can prove what it holds.

Atomic write: the bytes go to a temporary file in the target's folder, are flushed and
``fsync``-ed, and the temporary file is renamed onto the target (``os.replace``, atomic on
POSIX and Windows), then the folder is ``fsync``-ed.  A process killed at any point leaves
either the old file or the new one, never a part of it (a stray ``.*.tmp`` at worst).

Sealed file (caches and shards, read only by mf_dmri): the payload bytes (an ``.npz`` or
a ``torch.save`` archive) followed by a seal, a JSON record, its length (8 bytes, little
endian) and the magic ``MFDMRI-SEAL1``.  The seal holds

- ``content_sha256``: SHA-256 of the payload bytes;
- ``inputs``: a text digest of every input the payload depends on (mesh file bytes,
  settings, the mf_dmri version, ...), chosen by the writer;
- ``seal_sha256``: SHA-256 of the rest of the seal, so a damaged seal is detected too.

:func:`read_sealed` checks both: a truncated, damaged or unsealed file raises
:class:`CorruptArtefactError`; a file made from other inputs (a stale or swapped file)
raises :class:`StaleArtefactError` naming the first input that differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

MAGIC = b"MFDMRI-SEAL1"
SEAL_FORMAT = "mf_dmri.seal/1"
_TRAILER = struct.Struct("<Q")


class ArtefactError(ValueError):
    """A stored artefact cannot be used as it is."""


class CorruptArtefactError(ArtefactError):
    """The file is truncated, damaged or was not written by mf_dmri (no valid seal)."""


class StaleArtefactError(ArtefactError):
    """The file was made from other inputs (changed mesh, settings or version, or swapped)."""

    def __init__(self, message: str, *, changed: str) -> None:
        super().__init__(message)
        self.changed = changed


def sha256_bytes(data: bytes) -> str:
    """SHA-256 (hex) of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the bytes of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_sha256(value) -> str:
    """SHA-256 of the canonical JSON text of plain data ``value`` (sorted keys)."""
    return sha256_bytes(json.dumps(value, sort_keys=True, default=str).encode())


def _fsync_folder(folder: Path) -> None:
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - folders cannot be opened on Windows
        return
    try:
        os.fsync(handle)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(handle)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync it and rename it
    onto ``path``; returns ``path``.  On any error the temporary file is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    try:
        # mkstemp creates the file readable by its owner only; give it the mode an
        # ordinary open() would (0o666 less the umask)
        os.chmod(temporary, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return target


def _umask() -> int:
    """The process's file-creation mask (read by setting it and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda stream: stream.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode())


def seal(payload: bytes, inputs: Mapping[str, str]) -> bytes:
    """``payload`` followed by its seal (content hash and input digests)."""
    from mf_dmri import __version__

    record = {
        "format": SEAL_FORMAT,
        "content_sha256": sha256_bytes(payload),
        "inputs": {"mf_dmri_version": __version__, **{k: str(v) for k, v in inputs.items()}},
    }
    record["seal_sha256"] = text_sha256(record)
    text = json.dumps(record, sort_keys=True).encode()
    return payload + text + _TRAILER.pack(len(text)) + MAGIC


def write_sealed(path: str | os.PathLike, payload: bytes, inputs: Mapping[str, str]) -> Path:
    """Write ``payload`` sealed with ``inputs`` to ``path``, atomically."""
    return atomic_write_bytes(path, seal(payload, inputs))


def unseal(data: bytes, *, source: str = "data") -> tuple[bytes, dict]:
    """(payload, seal record) of sealed ``data``; :class:`CorruptArtefactError` if the seal
    is missing or the payload does not match its hash."""
    tail = len(MAGIC) + _TRAILER.size
    if len(data) < tail or not data.endswith(MAGIC):
        raise CorruptArtefactError(
            f"{source} is truncated or not an mf_dmri file (no seal at its end); delete it "
            "and it is recomputed"
        )
    (length,) = _TRAILER.unpack(data[-tail : -len(MAGIC)])
    start = len(data) - tail - length
    try:
        if start < 0:
            raise ValueError("seal longer than the file")
        record = json.loads(data[start : len(data) - tail])
        payload = data[:start]
        expected = record["content_sha256"]
        checksum = record.pop("seal_sha256")
        if text_sha256(record) != checksum:
            raise ValueError("the seal does not match its SHA-256")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptArtefactError(
            f"{source} has a damaged seal ({exc}); delete it and it is recomputed"
        ) from exc
    if sha256_bytes(payload) != expected:
        raise CorruptArtefactError(
            f"{source} is damaged (its content does not match its SHA-256); delete it and "
            "it is recomputed"
        )
    return payload, record


def check_inputs(record: dict, inputs: Mapping[str, str], *, source: str) -> None:
    """Raise :class:`StaleArtefactError` naming the first of ``inputs`` (and the mf_dmri
    version) that differs from what the seal ``record`` was made from."""
    from mf_dmri import __version__

    stored = record.get("inputs", {})
    for name, value in {"mf_dmri_version": __version__, **inputs}.items():
        if stored.get(name) != str(value):
            raise StaleArtefactError(
                f"{source} was made from another {name} (stored {stored.get(name)!r}, now "
                f"{str(value)!r}); it is stale: delete it or let it be recomputed",
                changed=name,
            )


def read_sealed(
    path: str | os.PathLike, inputs: Mapping[str, str] | None = None
) -> tuple[bytes, dict]:
    """(payload, seal record) of the sealed file ``path``, checked against its content hash
    and, if given, the ``inputs`` it must have been made from."""
    source = Path(path)
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise CorruptArtefactError(f"cannot read {source}: {exc.strerror or exc}") from exc
    payload, record = unseal(data, source=str(source))
    if inputs is not None:
        check_inputs(record, inputs, source=str(source))
    return payload, record
