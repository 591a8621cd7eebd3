"""One process per run folder: a ``.lock`` file claims it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .._errors import BayesdropError

__all__ = ["RunFolderInUse", "lock_run_folder"]

LOCK_FILE = ".lock"


class RunFolderInUse(BayesdropError):
    """Another live process holds the run folder (the same run started twice)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def lock_run_folder(folder: str | os.PathLike[str]) -> Path:
    """Claim ``folder`` for this process: create ``folder/.lock`` holding host and pid, and
    return its path (the caller unlinks it when done).

    A lock left by a dead process on this host is taken over; one held by a live process (or
    by a process on another host, which cannot be checked) raises :class:`RunFolderInUse`.
    """
    folder = Path(folder)
    lock = folder / LOCK_FILE
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                host, _, pid = lock.read_text().partition(" ")
            except FileNotFoundError:  # released between the two calls
                continue
            pid = pid.strip()
            stale = host == socket.gethostname() and pid.isdigit() and not _alive(int(pid))
            if host and not stale:
                raise RunFolderInUse(
                    f"Run folder {str(folder)!r} is in use by process {pid} on {host} "
                    f"(the same run started twice?). If that process is gone, delete {str(lock)!r}."
                ) from None
            lock.unlink(missing_ok=True)  # stale (its process died) or empty (a writer died mid-way)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        return lock
    raise RunFolderInUse(f"Could not lock run folder {str(folder)!r}: another process keeps claiming it.")
