"""Which worker identities name a process that is known to be gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from handlers.identity import identity_gone, worker_identity


def test_a_live_process_on_this_host_is_not_gone() -> None:
    parent = os.getppid()
    assert not identity_gone(f"{socket.gethostname()}:{parent}:abc123")


def test_a_finished_process_on_this_host_is_gone() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert identity_gone(f"{socket.gethostname()}:{child.stdout.strip()}:abc123")


def test_other_hosts_and_command_line_runs_are_never_declared_gone() -> None:
    assert not identity_gone("another-host:1:abc123")
    assert not identity_gone("cli:alice")


def test_this_process_s_own_id_from_an_earlier_life_is_gone() -> None:
    host, pid, _ = worker_identity().split(":")
    assert identity_gone(f"{host}:{pid}:older")
