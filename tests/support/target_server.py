"""A stand-in internal service on 127.0.0.1 for the SSRF tests: it counts every request it gets.

``internal_service()`` yields a ``Target`` with ``base`` (http://127.0.0.1:PORT)
and ``hits`` (the paths requested, in order). Routes: ``/secret`` answers a
JSON secret; ``/redirect?to=URL`` answers 302 to URL; anything else 404.
A refusal must leave ``hits`` empty: nothing may reach the service.
"""
from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

SECRET = "INTERNAL-SECRET-4242"
# the spellings and ranges the SSRF tests try (operator tests and the attack suite)
LOOPBACK = {  # spelling -> reaches a service bound to 127.0.0.1 when allowed
    "127.0.0.1": True, "localhost": True, "127.1": True, "0.0.0.0": True, "2130706433": True, "0x7f000001": True,
    "[::ffff:127.0.0.1]": True, "[::1]": False,
}
ELSEWHERE = {  # refused before connecting: nothing listens, nothing is sent
    "169.254.169.254": "cloud metadata", "169.254.1.1": "link-local", "10.0.0.1": "private", "172.16.0.1": "private",
    "192.168.0.1": "private", "100.64.0.1": "shared (CGNAT)", "224.0.0.1": "multicast", "[fe80::1]": "link-local",
    "[fc00::1]": "unique-local", "[fd00::1]": "unique-local", "[ff02::1]": "multicast", "[::]": "unspecified",
    "[64:ff9b::7f00:1]": "loopback", "[2002:7f00:1::]": "loopback", "[::ffff:169.254.169.254]": "cloud metadata",
}


@dataclass
class Target:
    base: str
    port: int
    hits: list[str] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        target: Target = self.server.target  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        target.hits.append(parts.path)
        if parts.path == "/secret":
            status, headers, body = 200, {"Content-Type": "application/json"}, json.dumps({"secret": SECRET}).encode()
        elif parts.path == "/redirect":
            status, headers, body = 302, {"Location": parse_qs(parts.query)["to"][0]}, b""
        else:
            status, headers, body = 404, {"Content-Type": "text/plain"}, b"no route"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def internal_service() -> Iterator[Target]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    httpd.target = Target(base=f"http://127.0.0.1:{port}", port=port)  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield httpd.target  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
