"""The one place that talks to the kernel's nftables: `nft -f` for a transaction (one atomic
commit) and `nft -j list table` to read our table back. Like knftables we shell out to the `nft`
binary: its syntax is the documented interface, and a script is easy to log and replay.
No shell is involved; arguments are a list and the script goes through a file descriptor.
"""
from __future__ import annotations

import fcntl
import logging
import os
import subprocess
from dataclasses import dataclass, field

import orjson

from ..netns import command_prefix
from .layout import check_table_name, map_def

log = logging.getLogger("nodeagent.proxy.nft")


class NftError(RuntimeError):
    pass


@dataclass
class KernelTable:
    """Our table as found in the kernel, in the renderer's canonical form."""
    chains: dict[str, int] = field(default_factory=dict)         # chain -> number of rules
    hooks: dict[str, tuple] = field(default_factory=dict)        # base chain -> (type, hook, prio)
    maps: dict[str, dict[str, object]] = field(default_factory=dict)   # same text form as render.py

    @property
    def fingerprint(self) -> str | None:
        fp = self.maps.get("fingerprint") or {}
        return next(iter(fp)) if len(fp) == 1 else None


def _scalar(kind: str, v) -> str:
    if kind == "mark":
        return f"{int(v):#010x}"
    if kind == "ipv4_prefix":
        if isinstance(v, dict) and "prefix" in v:
            return f"{v['prefix']['addr']}/{v['prefix']['len']}"
        if isinstance(v, dict) and "range" in v:
            a, b = v["range"]
            return f"{a}-{b}"
        return f"{v}/32"
    return str(v)


def _fields(kinds: tuple, v) -> str:
    """JSON element -> the text we write for it ("10.96.0.1 . tcp . 80")."""
    if isinstance(v, dict) and "concat" in v:
        v = v["concat"]
    elif not isinstance(v, list):
        v = [v]
    if len(v) != len(kinds):
        raise NftError(f"element {v!r} does not have the fields {kinds}")
    return " . ".join(_scalar(k, x) for k, x in zip(kinds, v))


def _value(d, v):
    if d.value == ("verdict",):
        for verb in ("goto", "jump"):
            if isinstance(v, dict) and verb in v:
                return f"{verb} {v[verb]['target']}"
        return str(next(iter(v))) if isinstance(v, dict) else str(v)
    return _fields(d.value, v)


def parse_table_json(text: bytes | str) -> KernelTable:
    """`nft -j list table` output -> KernelTable. Maps we do not know are kept by name only."""
    out = KernelTable()
    for item in orjson.loads(text).get("nftables", []):
        if "chain" in item:
            c = item["chain"]
            out.chains.setdefault(c["name"], 0)
            if "hook" in c:
                out.hooks[c["name"]] = (c.get("type"), c["hook"], c.get("prio"))
        elif "rule" in item:
            name = item["rule"]["chain"]
            out.chains[name] = out.chains.get(name, 0) + 1
        elif "map" in item or "set" in item:
            s = item.get("map") or item.get("set")
            d = map_def(s["name"])
            elems: dict[str, object] = {}
            out.maps[s["name"]] = elems
            if d is None:
                continue
            for e in s.get("elem", []):
                if d.value is None:
                    if isinstance(e, dict) and "elem" in e:
                        e = e["elem"]["val"]
                    elems[_fields(d.key, e)] = None
                else:
                    k, v = e
                    if isinstance(k, dict) and "elem" in k:
                        k = k["elem"]["val"]
                    elems[_fields(d.key, k)] = _value(d, v)
    return out


class Running:
    """An `nft` process working on a transaction; `wait()` collects it. `err_fd`: a memfd that
    holds nft's error output (instead of a pipe: see `Stream`); closed by `wait()`."""

    def __init__(self, proc, timeout: float, err_fd: int | None = None):
        self.proc, self.timeout, self.err_fd = proc, timeout, err_fd

    def wait(self) -> None:
        if self.proc is None:
            return
        try:
            _, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise NftError(f"nft did not finish in {self.timeout:g} s") from None
        finally:
            if self.err_fd is not None:
                err = os.pread(self.err_fd, 8192, 0)
                os.close(self.err_fd)
                self.err_fd = None
        if self.proc.returncode != 0:
            raise NftError(err.decode(errors="replace").strip()[:4000] or f"nft exited {self.proc.returncode}")


def check_stream_text(text: str) -> str:
    """A streamed transaction is written in pieces that each end with a whole `add element`
    command, so that the writer can hold back its closing brace (see `Stream`)."""
    if not text.endswith("}\n"):
        raise ValueError("a piece of a streamed transaction must end with a whole element command")
    return text


class Stream:
    """`nft -f` reading a pipe that this process fills while it renders: nft parses as it reads
    (about half of its time on a 10,000-service table), so parsing overlaps rendering instead of
    following it. nft commits once it sees the end of the pipe, so an early end must never look
    like a whole script:
    - every piece ends with an element command and the last two bytes ("}\n") are held back
      until the next piece, so that a writer that dies between pieces leaves nft an unclosed
      brace, a syntax error, and nothing is committed;
    - the proxier writes the table's fingerprint last: should a death in the middle of a write
      still cut at a line end, the committed table has no fingerprint and the next full sync
      rebuilds it in one transaction.
    `abort()` kills nft before it sees the end: nothing is committed.
    nft's errors go to a memfd, not a pipe: an nft that stopped reading after errors and filled
    a pipe with them (it quotes whole lines, and ours are long) would wait on us while we wait
    on it."""

    def __init__(self, argv: list[str], timeout: float):
        r, self.fd = os.pipe()
        self.err = os.memfd_create("nodeagent-nft-err", os.MFD_CLOEXEC)
        try:
            # a 1 MiB pipe (the default limit for unprivileged pipes) takes several pieces
            # before a write waits on nft
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        try:
            self.proc = subprocess.Popen(argv + ["-f", f"/dev/fd/{r}"], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self.err, pass_fds=(r,))
        except BaseException:
            os.close(self.fd)
            os.close(self.err)
            raise
        finally:
            os.close(r)
        self.timeout = timeout
        self._tail = b""
        self._broken = False

    def write(self, text: str) -> None:
        data = self._tail + check_stream_text(text).encode()
        self._tail = data[-2:]
        self._send(data[:-2])

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view and not self._broken:
                view = view[os.write(self.fd, view):]
        except BrokenPipeError:
            self._broken = True   # nft stopped reading because it failed: finish() says why

    def finish(self) -> "Running":
        """The whole script is written: nft evaluates and commits; `wait()` on the result."""
        self._send(self._tail)
        os.close(self.fd)
        return Running(self.proc, self.timeout, self.err)

    def abort(self) -> None:
        self.proc.kill()
        os.close(self.fd)
        self.proc.wait()
        os.close(self.err)


class NftBackend:
    """Real kernel. `netns` runs every command inside that named network namespace."""

    def __init__(self, netns: str | None = None, nft: str = "nft", timeout: float = 120.0):
        self.prefix = command_prefix(netns) + [nft]
        self.timeout = timeout
        self.netns = netns

    def apply(self, script: str) -> None:
        self.start(script).wait()

    def start(self, script: str) -> "Running":
        """Start `nft -f` on the script and return at once; `wait()` raises NftError.

        The script goes to nft in a memfd, not a pipe: nft then reads it at memory speed, where
        a pipe fed by subprocess's communicate() moves 512 bytes per GIL round trip and starved
        nft while this process built its index (a third of a 10,000-service sync)."""
        if not script:
            return Running(None, self.timeout)
        data = memoryview(script.encode())
        fd = os.memfd_create("nodeagent-nft", os.MFD_CLOEXEC)   # pass_fds opens it to nft only
        try:
            while data:
                data = data[os.write(fd, data):]
            os.lseek(fd, 0, os.SEEK_SET)
            proc = subprocess.Popen(self.prefix + ["-f", f"/dev/fd/{fd}"], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(fd,))
        finally:
            os.close(fd)
        return Running(proc, self.timeout)

    def stream(self) -> Stream:
        """Start `nft -f` on a pipe: `write()` pieces, then `finish().wait()` or `abort()`."""
        return Stream(self.prefix, self.timeout)

    def read(self, family: str, table: str) -> KernelTable | None:
        r = subprocess.run(self.prefix + ["-j", "list", "table", family, table], capture_output=True,
                           timeout=self.timeout)
        if r.returncode != 0:
            err = r.stderr.decode(errors="replace")
            if "No such file or directory" in err:
                return None
            raise NftError(err.strip()[:4000])
        return parse_table_json(r.stdout)

    def read_map(self, family: str, table: str, name: str) -> dict:
        r = subprocess.run(self.prefix + ["-j", "list", "map", family, table, name], capture_output=True,
                           timeout=self.timeout)
        if r.returncode != 0:
            return {}
        return parse_table_json(r.stdout).maps.get(name, {})

    def list_text(self, family: str, table: str) -> str:
        r = subprocess.run(self.prefix + ["list", "table", family, table], capture_output=True,
                           timeout=self.timeout)
        return r.stdout.decode() if r.returncode == 0 else ""

    def delete_table(self, family: str, table: str) -> bool:
        """Remove our table (cleanup); False when it was not there."""
        check_table_name(table)
        if self.read_exists(family, table):
            self.apply(f"delete table {family} {table}\n")
            return True
        return False

    def read_exists(self, family: str, table: str) -> bool:
        r = subprocess.run(self.prefix + ["list", "tables", family], capture_output=True, timeout=self.timeout)
        return any(line.split()[-1] == table for line in r.stdout.decode().splitlines() if line.strip())
