"""A state-based fake of the kernel's nftables, for tier-2 tests (knftables' fake.go, in spirit).

It parses the very script the real backend would send (only the command forms our transactions
produce; anything else is an error), applies it to a copy of its state and swaps the copy in only
when every command succeeded, as the kernel does. It enforces the kernel behaviours our sync
logic relies on: adding an existing element with another value fails, deleting a missing element
or chain fails, a chain still referenced cannot be deleted, jump/goto targets must exist. Every
rule is parsed by the packet tracer's grammar when it is added, so a rule fragment the tracer
does not know fails the test at once.

It counts what each transaction did (`last_ops`, `transactions`), which is how the convergence
tests check that a sync with nothing to do sends nothing.
"""
from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field

from .backend import KernelTable, NftError, check_stream_text
from .transaction import _field


def _priority(text: str) -> int:
    from .tracer import _priority as p
    return p(text)

_TYPEOF = {"ip daddr": "ipv4_addr", "ip saddr": "ipv4_addr", "meta l4proto": "inet_proto",
           "th dport": "inet_service", "udp dport": "inet_service", "numgen random mod 1": "integer"}


@dataclass
class FakeSet:
    spec: str
    key: tuple[str, ...]
    value: tuple[str, ...] | None
    flags: tuple[str, ...] = ()
    elements: dict = field(default_factory=dict)   # key -> value
    expires: dict = field(default_factory=dict)    # key -> monotonic deadline (dynamic maps)


@dataclass
class FakeChain:
    hook: tuple | None = None   # (type, hook, priority text)
    rules: list[str] = field(default_factory=list)


@dataclass
class FakeTable:
    chains: dict[str, FakeChain] = field(default_factory=dict)
    sets: dict[str, FakeSet] = field(default_factory=dict)


def parse_spec(spec: str) -> tuple[tuple, tuple | None, tuple]:
    parts = [p.strip() for p in spec.split(";") if p.strip()]
    if not parts:
        raise NftError(f"empty set spec {spec!r}")
    flags: tuple = ()
    for p in parts[1:]:
        if p.startswith("flags "):
            flags = tuple(p[6:].split(","))
        elif not re.match(r"^(size [0-9]+|timeout [0-9]+[smhd])$", p):
            raise NftError(f"unsupported set option {p!r}")
    decl = parts[0]
    if decl.startswith("type "):
        k, _, v = decl[5:].partition(" : ")
        key = tuple(x.strip() for x in k.split(" . "))
        value = tuple(x.strip() for x in v.split(" . ")) if v else None
    elif decl.startswith("typeof "):
        k, _, v = decl[7:].partition(" : ")
        try:
            key = tuple(_TYPEOF[x.strip()] for x in k.split(" . "))
            value = tuple(_TYPEOF[x.strip()] for x in v.split(" . ")) if v else None
        except KeyError as err:
            raise NftError(f"typeof expression {err} not supported by the fake") from None
    else:
        raise NftError(f"bad set declaration {decl!r}")
    if "interval" in flags:
        key = tuple("ipv4_prefix" if k == "ipv4_addr" else k for k in key)
    for t in key + (value or ()):
        if t not in ("ipv4_addr", "ipv4_prefix", "inet_proto", "inet_service", "integer", "mark", "verdict"):
            raise NftError(f"type {t} not supported by the fake")
    return key, value, flags


_CMD = re.compile(r"^(?P<verb>add|delete|flush) (?P<kind>table|chain|rule|map|set|element) "
                  r"(?P<family>ip) (?P<table>[A-Za-z][A-Za-z0-9_-]*)(?: (?P<rest>.*))?$")
_HOOK = re.compile(r"^\{ type (filter|nat) hook (prerouting|output|postrouting|input|forward) "
                   r"priority ([a-z0-9 +-]+) ; \}$")
_NAME = r"[a-z][a-z0-9-]*"


class FakeNft:
    """Same interface as NftBackend (apply, read, delete_table), plus state for the tracer."""

    def __init__(self, clock=time.monotonic):
        self.tables: dict[tuple[str, str], FakeTable] = {}
        self.transactions = 0
        self.last_ops = 0
        self.last_script = ""
        self.clock = clock
        self.fail_next: str | None = None   # inject a failure into the next apply

    # -- the backend interface -------------------------------------------------------------
    def apply(self, script: str) -> None:
        if not script:
            return
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise NftError(msg)
        work = copy.deepcopy(self.tables)
        ops = 0
        for n, line in enumerate(script.splitlines(), 1):
            if not line.strip():
                continue
            try:
                ops += self._command(work, line)
            except NftError as err:
                raise NftError(f"line {n}: {err}: {line[:200]}") from None
        self.tables = work
        self.transactions += 1
        self.last_ops = ops
        self.last_script = script

    def start(self, script: str):
        """Like NftBackend.start: the fake applies at once and reports at wait()."""
        err = None
        try:
            self.apply(script)
        except NftError as e:
            err = e

        class Done:
            def wait(self_inner):
                if err is not None:
                    raise err
        return Done()

    def stream(self):
        """Like NftBackend.stream: pieces are collected and applied as one script at finish()."""
        return _FakeStream(self)

    def read(self, family: str, table: str) -> KernelTable | None:
        t = self.tables.get((family, table))
        if t is None:
            return None
        out = KernelTable()
        for name, c in t.chains.items():
            out.chains[name] = len(c.rules)
            if c.hook:
                out.hooks[name] = c.hook
        for name, s in t.sets.items():
            out.maps[name] = {" . ".join(k): (" . ".join(v) if isinstance(v, tuple) else v)
                              for k, v in s.elements.items()}
        return out

    def read_map(self, family: str, table: str, name: str) -> dict:
        t = self.tables.get((family, table))
        if t is None or name not in t.sets:
            return {}
        for key in list(t.sets[name].elements):
            self.dynamic_lookup(t, name, key)   # drops expired entries, as the kernel would
        return self.read(family, table).maps[name]

    def delete_table(self, family: str, table: str) -> bool:
        if (family, table) in self.tables:
            self.apply(f"delete table {family} {table}\n")
            return True
        return False

    # -- commands --------------------------------------------------------------------------
    def _command(self, tables: dict, line: str) -> int:
        m = _CMD.match(line)
        if not m:
            raise NftError("syntax error (command the fake does not know)")
        verb, kind, key, rest = m["verb"], m["kind"], (m["family"], m["table"]), m["rest"] or ""
        if kind == "table":
            if rest:
                raise NftError("unexpected text after table")
            if verb == "add":
                tables.setdefault(key, FakeTable())
            elif verb == "delete":
                if key not in tables:
                    raise NftError("No such file or directory (table)")
                del tables[key]
            else:
                raise NftError("unsupported table verb")
            return 1
        t = tables.get(key)
        if t is None:
            raise NftError("No such file or directory (table)")
        if kind == "chain":
            return self._chain(t, verb, rest)
        if kind == "rule":
            return self._rule(t, verb, rest)
        if kind in ("map", "set"):
            return self._set(t, verb, kind, rest)
        return self._element(t, verb, rest)

    def _chain(self, t: FakeTable, verb: str, rest: str) -> int:
        name, _, hook = rest.partition(" ")
        if not re.match(f"^{_NAME}$", name):
            raise NftError(f"bad chain name {name!r}")
        if verb == "add":
            h = None
            if hook:
                hm = _HOOK.match(hook)
                if not hm:
                    raise NftError(f"bad chain hook {hook!r}")
                h = (hm[1], hm[2], _priority(hm[3]))
            old = t.chains.get(name)
            if old is None:
                t.chains[name] = FakeChain(h)
            elif h and old.hook != h:
                raise NftError("Operation not supported (chain hook change)")
            return 1
        if hook:
            raise NftError("unexpected text after chain name")
        if name not in t.chains:
            raise NftError("No such file or directory (chain)")
        if verb == "flush":
            t.chains[name].rules.clear()
        else:
            if self._references(t, name):
                raise NftError("Device or resource busy (chain in use)")
            del t.chains[name]
        return 1

    @staticmethod
    def _references(t: FakeTable, chain: str) -> bool:
        pat = re.compile(rf"\b(jump|goto) {re.escape(chain)}\b")
        for c in t.chains.values():
            if any(pat.search(r) for r in c.rules):
                return True
        for s in t.sets.values():
            if s.value == ("verdict",) and any(v.split(" ", 1)[1] == chain for v in s.elements.values()):
                return True
        return False

    def _rule(self, t: FakeTable, verb: str, rest: str) -> int:
        from .tracer import parse_rule  # the tracer's grammar is the fake's rule grammar (lazy: circular)
        if verb != "add":
            raise NftError("unsupported rule verb")
        chain, _, text = rest.partition(" ")
        if chain not in t.chains:
            raise NftError("No such file or directory (chain)")
        try:
            frags = parse_rule(text)
        except ValueError as err:
            raise NftError(str(err)) from None
        for f in frags:
            target = getattr(f, "target", None)
            if target and target not in t.chains:
                raise NftError(f"No such file or directory (chain {target})")
            for s in getattr(f, "sets", ()):
                if s not in t.sets:
                    raise NftError(f"No such file or directory (set {s})")
        t.chains[chain].rules.append(text)
        return 1

    def _set(self, t: FakeTable, verb: str, kind: str, rest: str) -> int:
        if verb == "delete":
            if rest not in t.sets:
                raise NftError(f"No such file or directory ({kind} {rest})")
            pat = re.compile(rf"@{re.escape(rest)}\b")
            if any(pat.search(r) for c in t.chains.values() for r in c.rules):
                raise NftError(f"Device or resource busy ({kind} {rest} in use)")
            del t.sets[rest]
            return 1
        m = re.match(rf"^({_NAME}) \{{ (.*) \}}$", rest)
        if verb != "add" or not m:
            raise NftError(f"unsupported {kind} command")
        name, spec = m[1], m[2]
        key, value, flags = parse_spec(spec)
        if (kind == "map") != (value is not None):
            raise NftError(f"{kind} declaration does not match its type")
        old = t.sets.get(name)
        if old is None:
            t.sets[name] = FakeSet(spec, key, value, flags)
        elif old.spec != spec:
            raise NftError("File exists (set with another definition)")
        return 1

    def _element(self, t: FakeTable, verb: str, rest: str) -> int:
        m = re.match(rf"^({_NAME}) \{{ (.*) \}}$", rest)
        if not m or verb not in ("add", "delete"):
            raise NftError("bad element command")
        s = t.sets.get(m[1])
        if s is None:
            raise NftError("No such file or directory (set)")
        n = 0
        for item in m[2].split(", "):
            k, sep, v = item.partition(" : ")
            key = self._fields(s.key, k)
            if verb == "delete":
                if sep:
                    raise NftError("delete element with a value")
                if key not in s.elements:
                    raise NftError("No such file or directory (element)")
                del s.elements[key]
                s.expires.pop(key, None)
            else:
                if (s.value is None) != (not sep):
                    raise NftError("element value does not match the set type")
                value = None
                if s.value == ("verdict",):
                    vm = re.match(rf"^(goto|jump) ({_NAME})$", v)
                    if not vm:
                        raise NftError(f"bad verdict {v!r}")
                    if vm[2] not in t.chains:
                        raise NftError(f"No such file or directory (chain {vm[2]})")
                    value = v
                elif s.value is not None:
                    value = self._fields(s.value, v)
                if key in s.elements and s.elements[key] != value:
                    raise NftError("File exists (element with another value)")
                s.elements[key] = value
            n += 1
        return n

    @staticmethod
    def _fields(kinds: tuple, text: str) -> tuple:
        parts = text.split(" . ")
        if len(parts) != len(kinds):
            raise NftError(f"{text!r} does not have the fields {kinds}")
        out = []
        for k, p in zip(kinds, parts):
            if k == "ipv4_prefix" and "/" not in p:
                p += "/32"
            try:
                out.append(_field(k, p))
            except ValueError as err:
                raise NftError(str(err)) from None
        return tuple(out)

    # -- for the tracer ----------------------------------------------------------------------
    def table(self, family: str, name: str) -> FakeTable:
        return self.tables[(family, name)]

    def dynamic_lookup(self, t: FakeTable, name: str, key: tuple):
        s = t.sets[name]
        deadline = s.expires.get(key)
        if deadline is not None and deadline <= self.clock():
            s.elements.pop(key, None)
            s.expires.pop(key, None)
        return s.elements.get(key)

    def dynamic_update(self, t: FakeTable, name: str, key: tuple, value, timeout: float) -> None:
        s = t.sets[name]
        if self.dynamic_lookup(t, name, key) is None:   # `update` keeps an existing value
            s.elements[key] = value
        s.expires[key] = self.clock() + timeout


class _FakeStream:
    def __init__(self, fake: FakeNft):
        self.fake, self.pieces = fake, []

    def write(self, text: str) -> None:
        self.pieces.append(check_stream_text(text))

    def finish(self):
        return self.fake.start("".join(self.pieces))

    def abort(self) -> None:
        self.pieces = []
