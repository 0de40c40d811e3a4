"""A real HTTP server on loopback whose answers a test writes as one function.

    server = PageServer(lambda path, query: (200, b"<html>…</html>", "text/html"))
    server.url          # http://127.0.0.1:PORT
    server.close()

`route(path, query)` returns (status, body, content type); `None` is a 404. The server
threads, so the app may fetch several pages at once, as it does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

Route = Callable[[str, dict], "tuple[int, bytes, str] | None"]


class PageServer:
    def __init__(self, route: Route):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                answer = route(url.path, parse_qs(url.query))
                status, body, ctype = answer if answer is not None else (404, b"", "text/plain")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
