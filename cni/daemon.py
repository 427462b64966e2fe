"""An optional resident server for the plugin: the executable hands each call to it over a unix
socket instead of running the plugin itself (main.py), saving the plugin's imports per call.

    python -m cni.daemon [--socket /run/nodeagent/cni.sock]

The node agent can host the same server in a thread (`serve(path)` / `make_server(path)`).
Protocol: one connection per call; the client sends {"env": {CNI_*...}, "stdin": "..."} and
shuts down its write side; the server answers {"code": n, "stdout": "...", "stderr": "..."}.
The socket is created with mode 0600: only root may ask for network changes.
"""
from __future__ import annotations

import argparse
import io
import os
import socketserver
import sys

from . import jsonio
from .plugin import run

DEFAULT_SOCKET = "/run/nodeagent/cni.sock"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        data = self.rfile.read()
        err = io.StringIO()
        try:
            req = jsonio.loads(data)
            code, out = run(req["env"], req["stdin"], stderr=err)
        except (ValueError, KeyError, TypeError) as e:
            code, out = 1, jsonio.dumps({"cniVersion": "1.1.0", "code": 6,
                                         "msg": "bad request to the nodeagent CNI daemon", "details": str(e)})
        self.wfile.write(jsonio.dumps({"code": code, "stdout": out, "stderr": err.getvalue()}).encode())


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


def make_server(path: str = DEFAULT_SOCKET) -> Server:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    old = os.umask(0o177)
    try:
        return Server(path, _Handler)
    finally:
        os.umask(old)


def serve(path: str = DEFAULT_SOCKET):
    server = make_server(path)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m cni.daemon", description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", default=DEFAULT_SOCKET, help=f"unix socket path (default {DEFAULT_SOCKET})")
    a = p.parse_args(argv)
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"nodeagent CNI daemon listening on {a.socket}", file=sys.stderr, flush=True)
    try:
        serve(a.socket)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
