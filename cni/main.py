"""What the installed executable runs (see install.py for the script that calls `main`).

Two paths, same result:
- daemon: when a resident daemon listens on the configured unix socket (daemon.py; the node agent
  can host it), the CNI_* environment and stdin are sent there and its answer is printed. The
  daemon has every module imported already.
- standalone: otherwise the plugin runs in this process (plugin.run).

Start-up is most of a plugin call's cost, so this module imports nothing it does not need: the
interpreter runs with -I -S (no site-packages scan: ~50 ms saved), and the plugin's modules import
only C modules of the standard library (see jsonio.py, netlink.py).
"""
from __future__ import annotations

import sys

FORWARDED_PREFIXES = ("CNI_", "NODEAGENT_CNI_")


def _via_daemon(socket_path: str, env, stdin: bytes):
    """(code, stdout, stderr) from the daemon, or None when no daemon listens there."""
    import _socket
    from . import jsonio
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    try:
        try:
            s.connect(socket_path)
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        req = {"env": {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES)},
               "stdin": stdin.decode("utf-8", "replace")}
        s.sendall(jsonio.dumps(req).encode())
        s.shutdown(_socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        reply = jsonio.loads(b"".join(chunks))
        return reply["code"], reply["stdout"], reply.get("stderr", "")
    except (OSError, ValueError, KeyError, TypeError) as e:
        from .spec import CniError, E_TRY_AGAIN, LATEST
        err = CniError(E_TRY_AGAIN, "the nodeagent CNI daemon did not answer",
                       f"{socket_path}: {e}; retry, or check the node agent")
        return 1, jsonio.dumps(err.to_dict(LATEST)), ""
    finally:
        s.close()


def main(socket_path: str = "") -> None:
    import os
    stdin = sys.stdin.buffer.read() if sys.stdin is not None else b""
    answer = _via_daemon(socket_path, os.environ, stdin) if socket_path else None
    if answer is None:
        from .plugin import run
        code, out = run(os.environ, stdin)
        err = ""
    else:
        code, out, err = answer
    if err:
        sys.stderr.write(err)
    if out:
        sys.stdout.write(out)
        sys.stdout.write("\n")
    sys.stdout.flush()
    sys.exit(code)
