"""Finding and stopping the servers tests start as child processes (haproxy, nginx)."""

from __future__ import annotations

import shutil
import subprocess


def stop_child(process: subprocess.Popen[bytes] | None) -> None:
    """Terminate, wait, and kill if it will not go: no child outlives its test."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def system_binary(name: str) -> str | None:
    """Debian installs servers in /usr/sbin, which is not on an ordinary user's PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
