"""Running our kernel-facing commands in a named network namespace (tests, the lab, a node that is
itself a namespace). Subprocesses are prefixed with `nsenter --net=/run/netns/NAME`; sockets are
created from a short-lived thread that enters the namespace (setns affects only the calling
thread, and a socket belongs to the namespace it was created in, whatever thread uses it later).
"""
from __future__ import annotations

import ctypes
import os
import re
import socket
import threading

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CLONE_NEWNET = 0x40000000


def check_netns(name: str) -> str:
    if not _NAME.match(name or "") or name in (".", ".."):
        raise ValueError(f"bad network namespace name {name!r}")
    return name


def command_prefix(netns: str | None) -> list[str]:
    if not netns:
        return []
    return ["nsenter", f"--net=/run/netns/{check_netns(netns)}", "--"]


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def socket_in(netns: str | None, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0) -> socket.socket:
    """A socket created inside `netns` (or here when None)."""
    if not netns:
        return socket.socket(family, type, proto)
    path = f"/run/netns/{check_netns(netns)}"
    result: dict = {}

    def work():
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                _setns(fd)   # this thread only; it ends right after
            finally:
                os.close(fd)
            result["sock"] = socket.socket(family, type, proto)
        except BaseException as err:  # handed to the caller
            result["err"] = err

    t = threading.Thread(target=work, name=f"netns-{netns}")
    t.start()
    t.join()
    if "err" in result:
        raise result["err"]
    return result["sock"]
