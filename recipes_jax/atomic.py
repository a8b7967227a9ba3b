"""The user's files: atomic writes, a lock for read-modify-write, and reading text.

A crash mid-write leaves either the old file or the new one, never a torn file; two commands
updating the same file at once (``record`` while ``suggest`` runs) take turns under
:func:`file_lock` instead of one silently overwriting the other's change; :func:`read_text`
reads what editors and spreadsheets save (a UTF-8 byte-order mark, Windows line ends).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "file_lock", "read_text", "writable_path"]


def writable_path(path: str | os.PathLike) -> str:
    """The file a write to ``path`` replaces: symlinks resolved (replacing the link itself would
    leave its target, e.g. a ledger shared by a team, unchanged). Raises ``FileNotFoundError``
    if its folder does not exist and ``IsADirectoryError`` if it is a folder, so a command can
    check where it will write before it computes what to write."""
    path = os.path.realpath(os.fspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give the path of a file in it")
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"folder {directory} does not exist; create it first (mkdir -p {directory})"
        )
    return path


def read_text(path: str | os.PathLike, *, what: str = "file") -> str:
    """The text of the UTF-8 file at ``path`` (a byte-order mark, which spreadsheets' "CSV
    UTF-8" adds, is dropped). Raises ``ValueError`` naming the line and column of a byte that is
    not UTF-8, and ``IsADirectoryError`` for a folder."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{what} {path} is a folder; give the path of the file")
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        head = data[: e.start]
        line = head.count(b"\n") + 1
        column = e.start - (head.rfind(b"\n") + 1) + 1
        raise ValueError(
            f"{what} {path} is not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, "
            f"column {column}; save it as UTF-8 (a spreadsheet's 'CSV UTF-8', an editor's "
            "'UTF-8' encoding)"
        ) from None


def _create_beside(path: str, prefix: str, suffix: str) -> tuple[int, str]:
    """A new file in ``path``'s folder, created with the mode a plain ``open`` would give it
    (0666 less the umask; ``tempfile.mkstemp`` would make it private, 0600)."""
    directory = os.path.dirname(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        name = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(name, flags, 0o666), name
        except FileExistsError:
            continue


def atomic_write(
    path: str | os.PathLike, write: Callable[[BinaryIO], None], *, prefix: str
) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, rename it over ``path``.

    The temporary file is removed if ``write`` fails; ``path`` is only ever replaced whole. A
    symlink is followed (its target is replaced, the link kept); an existing file keeps its
    permissions (and group, where allowed); a new one gets the usual ones (0666 less the umask).
    """
    path = writable_path(path)
    fd, tmp = _create_beside(path, prefix, ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if os.path.exists(path):
                old = os.stat(path)
                os.chmod(tmp, stat.S_IMODE(old.st_mode))
                if hasattr(os, "chown"):
                    with contextlib.suppress(OSError):  # only the file's owner or root may
                        os.chown(tmp, -1, old.st_gid)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, timeout_s: float = 120.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for a read-modify-write (e.g. a ledger update).

    The lock is an OS advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) on a
    hidden sidecar file ``.<name>.lock`` beside the real file (symlinks resolved, so everyone
    sharing the file shares the lock). The OS releases it when its holder exits, even by a
    crash, so a lock is never left stale. Waits up to ``timeout_s`` seconds for another holder,
    then raises ``TimeoutError`` naming the file.
    """
    target = writable_path(path)
    lock_path = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + timeout_s
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{target} is being updated by another command (it holds {lock_path}) "
                    f"and did not finish within {timeout_s:g} s; try again when it has finished"
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

except ImportError:  # Windows (not exercised by the test suite, which runs on Linux)
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
