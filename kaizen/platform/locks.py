"""Exclusive file locks between processes (``fcntl.flock``), shared by every Kaizen writer.

A lock is an open descriptor on a lock file holding ``flock(LOCK_EX)``. The kernel releases it
when the descriptor is closed, which includes the death of the holding process, so a crashed
holder never leaves a stale lock behind. The lock belongs to the open file, not the process:
a second :func:`acquire_file_lock` of the same path in the same process waits for the first
(callers that need re-entrancy keep their own count, as :func:`kaizen.registry._backend.store_lock`
does). The descriptor is not inherited by child processes.

With ``record_pid`` the holder writes its pid into the lock file once it has the lock, and a
process that gives up waiting reads it back into :attr:`LockTimeoutError.holder`, so the error
can name who holds the lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LockTimeoutError", "acquire_file_lock", "file_lock", "release_file_lock"]

# How often a waiting process retries a lock held by another.
POLL_S = 0.02
# At most this much of a lock file is read back as the holder's pid.
_HOLDER_BYTES = 64


class LockTimeoutError(TimeoutError):
    """Another process held a file lock for longer than the caller would wait.

    Attributes:
        path: the lock file.
        holder: the pid text the holder recorded in the lock file, or None when it recorded
            none (it did not use ``record_pid``, or it is between taking the lock and writing).
        timeout_s: how long the caller waited.
    """

    def __init__(self, path: Path, holder: str | None, timeout_s: float) -> None:
        self.path = path
        self.holder = holder
        self.timeout_s = timeout_s
        who = f"pid {holder}" if holder else "another process"
        super().__init__(f"{path}: {who} held the lock for over {timeout_s:g} s")


def acquire_file_lock(
    path: str | os.PathLike[str], timeout_s: float | None = None, *, record_pid: bool = False
) -> int:
    """Take the exclusive lock on ``path``, creating the file and its parent folders.

    Args:
        path: the lock file.
        timeout_s: None waits as long as it takes; 0 tries once; otherwise retries every
            :data:`POLL_S` seconds until ``timeout_s`` seconds have passed.
        record_pid: once the lock is held, replace the file's content with this process's pid.

    Returns:
        The descriptor holding the lock; give it to :func:`release_file_lock`.

    Raises:
        LockTimeoutError: the lock stayed taken for ``timeout_s`` seconds.
        ValueError: ``timeout_s`` is negative.
    """
    if timeout_s is not None and timeout_s < 0:
        raise ValueError(f"timeout_s must be None or >= 0, got {timeout_s}")
    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout_s is None:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        else:
            _wait_for_lock(descriptor, lock_path, timeout_s)
        if record_pid:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, str(os.getpid()).encode(), 0)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _wait_for_lock(descriptor: int, path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LockTimeoutError(path, _recorded_holder(descriptor), timeout_s) from None
            time.sleep(min(POLL_S, remaining))


def _recorded_holder(descriptor: int) -> str | None:
    try:
        text = os.pread(descriptor, _HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text or None


def release_file_lock(descriptor: int) -> None:
    """Release a lock taken by :func:`acquire_file_lock` and close its descriptor."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


@contextmanager
def file_lock(
    path: str | os.PathLike[str], timeout_s: float | None = None, *, record_pid: bool = False
) -> Iterator[int]:
    """Hold the exclusive lock on ``path`` for the ``with`` block (see :func:`acquire_file_lock`).

    Yields:
        The descriptor holding the lock.

    Raises:
        LockTimeoutError: the lock stayed taken for ``timeout_s`` seconds.
    """
    descriptor = acquire_file_lock(path, timeout_s, record_pid=record_pid)
    try:
        yield descriptor
    finally:
        release_file_lock(descriptor)
