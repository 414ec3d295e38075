"""Process plumbing shared by the supervisor, the tuning executor and the CLI."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

# PR_SET_PDEATHSIG from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    """True while a process with ``pid`` runs (it may belong to another user).

    A zombie (exited, not yet reaped by its parent) is not alive: on Linux its state in
    ``/proc/<pid>/stat`` is checked once the pid is known to exist.

    Args:
        pid: a process id; 0 or less is never alive.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, we may just not signal it
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no /proc (not Linux, or hidden): trust the signal check
    # The state follows the parenthesised command name, which may itself hold spaces.
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("Z", "X")


def parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` tying the child's life to this process.

    The hook asks Linux (``prctl(PR_SET_PDEATHSIG)``) to send ``sig`` to the child when the
    process that built the hook dies, and ends the child at once (exit status 1) if that
    process already died between the fork and the ``prctl`` call, when the request would
    come too late to fire. Build the hook in the process that starts the child. Linux sends
    the signal when the *thread* that forked the child exits, so start such children from
    a thread that lives as long as the process (the main thread).

    Args:
        sig: the signal the child gets, e.g. ``SIGTERM`` to let it clean up, ``SIGKILL``.

    Returns:
        The hook, or None off Linux or when ``prctl`` cannot be found.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    number = ctypes.c_ulong(int(sig))

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, number)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def listen_problem(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port``, or None when it can.

    Binds the way the server will (``SO_REUSEADDR``: a port left in TIME_WAIT by a previous
    server is free) and lets go at once.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None
