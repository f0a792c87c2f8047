"""A real redis-server on 127.0.0.1 for tests and benchmarks.

``local_redis()`` starts the ``redis-server`` binary (Debian package
``redis-server``) on a free port with persistence off, waits for PING,
yields ``redis://127.0.0.1:PORT/0`` and stops the process it started.
``redis_binary()`` is None when the binary is absent (tests skip then).
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from typing import Iterator

from .net import free_port


def redis_binary() -> str | None:
    return shutil.which("redis-server")


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    import redis

    binary = redis_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", folder, "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=0.2)
            for _ in range(100):  # up to ~5 s for the server to listen
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if proc.poll() is not None:
                        raise RuntimeError("redis-server exited at start") from None
                    time.sleep(0.05)
            else:
                raise RuntimeError("redis-server did not answer PING")
            client.close()
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
