"""Run a function inside another network namespace, on a thread of its own.

setns(2) moves only the calling thread. The main thread never leaves the node's namespace: each
call starts a fresh thread, which enters the target namespace, runs the function and exits
(containernetworking/plugins' pkg/ns/README.md describes what goes wrong otherwise). A netlink
socket created on that thread stays bound to the pod's namespace after the thread is gone.

Python 3.12 has os.setns; on 3.11 we call libc's setns through the _ctypes C module.
"""
from __future__ import annotations

import os

import _thread

CLONE_NEWNET = 0x40000000
_setns = None


def _libc_setns():
    global _setns
    if _setns is None:
        _setns = getattr(os, "setns", None) or _ctypes_setns()
    return _setns


def _ctypes_setns():
    """libc's setns through the `_ctypes` C module directly: `import ctypes` builds its whole
    Python layer first (~4 ms of every pod start here); we need one function of one type."""
    import _ctypes

    class c_int(_ctypes._SimpleCData):
        _type_ = "i"

    class Fn(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = c_int
        _argtypes_ = (c_int, c_int)

    class Libc:  # what CFuncPtr((name, library)) reads: the dlopen handle
        _handle = _ctypes.dlopen(None, os.RTLD_NOW)

    fn = Fn(("setns", Libc))

    def setns(fd, nstype=0):
        if fn(fd, nstype) != 0:
            err = _ctypes.get_errno()
            raise OSError(err, f"setns: {os.strerror(err)}")
    return setns


def open_netns(path: str) -> int:
    """A file descriptor of a network namespace (e.g. /run/netns/x); FileNotFoundError if gone."""
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def same_netns(path: str) -> bool:
    """Is `path` the namespace this process runs in? (the spec forbids adding to it)."""
    a, b = os.stat(path), os.stat("/proc/self/ns/net")
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def run_in_netns(ns_fd: int, fn, *args):
    """fn(*args) on a new thread inside the namespace `ns_fd`; returns its value or raises
    its exception."""
    setns = _libc_setns()
    done = _thread.allocate_lock()
    done.acquire()
    box: list = [None, None]

    def body():
        try:
            setns(ns_fd, CLONE_NEWNET)
            box[0] = fn(*args)
        except BaseException as e:  # handed to the caller
            box[1] = e
        finally:
            done.release()
            # the thread ends here; it never runs anything else in the pod's namespace

    _thread.start_new_thread(body, ())
    done.acquire()
    if box[1] is not None:
        raise box[1]
    return box[0]
