"""Process plumbing shared by the supervisor, the tuning executor and the CLI."""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists (it may belong to another user).

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
        return True  # it exists, we may just not signal it
    return True


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
