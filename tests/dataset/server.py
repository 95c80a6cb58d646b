"""A real HTTP server on loopback that serves one archive, honours Range, and can misbehave
(cut the connection midway, ignore Range, answer an error status) to test downloads."""
from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional


@dataclass
class ArchiveServer:
    """Serves `data` at `/<name>`; `cut_next` requests stop after `cut_at` bytes."""

    data: bytes
    name: str = "speech_commands_test.tar.gz"
    cut_next: int = 0
    cut_at: int = 0
    ignore_range: bool = False
    status: Optional[int] = None
    ranges: list[Optional[str]] = field(default_factory=list)
    _httpd: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{self.name}"

    def start(self) -> "ArchiveServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.ranges.append(self.headers.get("Range"))
                if server.status:
                    self.send_error(server.status)
                    return
                if self.path != f"/{server.name}":
                    self.send_error(404)
                    return
                body, start = server.data, 0
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if m and not server.ignore_range:
                    start = int(m.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                part = body[start:]
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(len(part)))
                self.end_headers()
                if server.cut_next > 0:
                    server.cut_next -= 1
                    self.wfile.write(part[: server.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(part)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
