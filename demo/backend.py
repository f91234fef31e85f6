#!/usr/bin/env python3
"""Demo backend for `make run`: answers every request with a JSON echo of what it received.

It shows what keyway forwards: the path, the injected credential headers, X-Request-Id.
Paths containing /fail/ answer 500 with a plain-text body, to show keyway's error envelope.
A POST to .../authenticate answers 204 with no body, as ASAPP's authenticate operation does.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        if self.command == "POST" and self.path.split("?")[0].endswith("/authenticate"):
            self.send_response(204)
            self.end_headers()
            return
        if "/fail/" in self.path:
            status, payload, kind = 500, b"backend failure", "text/plain"
        else:
            echo = {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
            status, payload, kind = 200, json.dumps(echo, indent=2).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    host, port = (sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9000").rsplit(":", 1)
    ThreadingHTTPServer((host, int(port)), Echo).serve_forever()
