"""One recorder per cassette file: an exclusive lock beside it that names its holder.

Two recorders writing one cassette would each rewrite the whole file from what they recorded,
and the last write would silently drop the other's interactions. :class:`CassetteLock` takes an
advisory lock (``flock``) on ``.NAME.lock`` in the cassette's directory; the second recorder gets
:class:`CassetteLockedError` naming the process that holds it. The kernel drops the lock when
its holder dies, however it dies (``kill -9`` included), so a stale lock file never blocks
anyone; the file itself is removed when the lock is released.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from .errors import StreamreelError

__all__ = ["CassetteLock", "CassetteLockedError"]

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


class CassetteLockedError(StreamreelError):
    """The cassette is being recorded by another recorder (named in the message)."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(
            f"{path}: being recorded by another recorder ({holder}); stop it first or record into another file "
            "(two recorders on one file would lose one's interactions)"
        )


class CassetteLock:
    """The lock on one cassette path; :meth:`acquire` raises :class:`CassetteLockedError` if another holds it.

    Where no lock file can be made (a read-only directory, a file where the directory should be)
    :meth:`acquire` returns False: nothing can be written there either, and the recorder reports
    that when it writes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.file = self.path.parent / f".{self.path.name}.lock"
        self._fd: int | None = None
        self._made: list[Path] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock (True), or find that none can be taken here (False)."""
        if self._fd is not None:
            return True
        try:
            self._make_parents()
        except OSError:
            return False
        for _ in range(10):
            try:
                fd = os.open(self.file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            except OSError:
                return False
            try:
                if not _try_lock(fd):
                    raise CassetteLockedError(self.path, _holder(fd))
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.file).st_ino
                except FileNotFoundError:
                    same = False
                if not same:  # released (and unlinked) between our open and our lock: take the new file
                    os.close(fd)
                    continue
            except BaseException:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            self._fd = fd
            return True
        return False

    def release(self) -> None:
        """Remove the lock file and drop the lock (and the directories made for it, if still empty)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.file.unlink()
        except OSError:
            pass
        os.close(fd)
        for directory in reversed(self._made):
            try:
                directory.rmdir()
            except OSError:
                break
        self._made = []

    def _make_parents(self) -> None:
        missing = []
        parent = self.path.parent
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            directory.mkdir()
            self._made.append(directory)


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt  # pragma: no cover - Windows

    try:  # pragma: no cover
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:  # pragma: no cover
        return False
    return True  # pragma: no cover


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except (OSError, AttributeError):
        text = ""
    return text or "a process that has not written its name yet"
