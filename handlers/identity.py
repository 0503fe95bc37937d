"""Who this process is, for leases in the database: ``host:pid:random``,
and whether such an identity's process is known to be gone."""

from __future__ import annotations

import os
import secrets
import socket


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def identity_gone(identity: str) -> bool:
    """Whether the process an identity names is known to be dead: same host,
    and no such process (another host's processes cannot be checked)."""
    host, _, rest = identity.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # an earlier life of this process id: this process runs nothing yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
