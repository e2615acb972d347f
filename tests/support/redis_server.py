"""A private redis-server process on a free port, for fault tests (stop, kill, pause, restart).

Never the machine's shared Redis: these tests stop, flush and freeze the server they start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.support.live import free_port


def redis_server_binary() -> str:
    """The redis-server binary; skips without it, fails in CI (CI=true or REQUIRE_REDIS=1)."""
    binary = shutil.which("redis-server")
    if binary:
        return binary
    if os.environ.get("CI") == "true" or os.environ.get("REQUIRE_REDIS") == "1":
        pytest.fail("redis-server is required for the fault tests (CI / REQUIRE_REDIS=1)")
    pytest.skip("redis-server not installed: the Redis fault tests need their own server")


class RedisServer:
    """One redis-server; `start` again after `stop`/`kill` reuses the same port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis.from_url(self.url, socket_timeout=0.5) as probe:
                    if probe.ping():
                        return
            except redis.RedisError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the server is gone, its port refuses connections."""
        if self.process is not None:
            self.resume()
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def flush(self) -> None:
        with redis.Redis.from_url(self.url) as client:
            client.flushall()


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    binary = redis_server_binary()
    with tempfile.TemporaryDirectory(prefix="auth-service-redis-") as tmp:
        server = RedisServer(binary, Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()
