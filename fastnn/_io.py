"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def _file_mode(path: Path) -> int:
    """The permission bits of the existing file, or those a new file would get."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)  # the only way to read the umask is to set it
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX); silently skipped where impossible."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, write, suffix: str = ".tmp") -> None:
    """Create or replace the file ``path`` with what ``write(f)`` writes, atomically.

    ``write`` gets a binary file object opened on a temporary file in the same
    directory (named ``.<name>.<random><suffix>``). Once it returns, the data is
    flushed to disk and the temporary file is moved over ``path`` with
    :func:`os.replace`; if anything fails on the way (``write`` raising, a full
    disk, an interrupt), the temporary file is removed and an existing ``path``
    is left untouched. The new file keeps the permissions of the one it
    replaces, or gets those of a normally created file (``0o666`` minus the
    umask), not the private ``0o600`` of a temporary file.

    Parameters
    ----------
    path : str or os.PathLike
    write : callable
        ``write(f)`` with ``f`` a binary file open for writing (and reading).
    suffix : str, default '.tmp'
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)
