"""An nftables transaction, knftables-style: an ordered list of operations whose `str()` is the
exact script given to `nft -f -` (one atomic commit in the kernel).

Building never raises; `script()` validates every interpolated value (identifiers against a
pattern, addresses with `ipaddress`, protocols and ports against their sets and ranges) and raises
ValueError on the first bad one, before anything is sent. The renderer only uses validated model
values, so a failure here is a bug, caught before it reaches a shell-free but still
syntax-sensitive `nft` parser.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .layout import MapDef, check_ident, map_def

CHUNK = 2000  # elements per `add element` command: long lines parse fast, but keep them bounded

_VERDICT = re.compile(r"^(goto|jump) [a-z][a-z0-9-]{0,62}$")
_INT = re.compile(r"^[0-9]{1,10}$")
_MARK = re.compile(r"^0x[0-9a-f]{1,8}$")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}$")  # canonical dotted quad only (no leading zeros)


def _field(kind: str, v: str) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{kind} value {v!r} is not a string")
    if kind == "ipv4_addr":
        if not _IPV4.match(v):  # a regex is 5x cheaper than ipaddress and as strict here
            raise ValueError(f"address {v!r} is not a canonical IPv4 address")
    elif kind == "ipv4_prefix":
        if str(ipaddress.IPv4Network(v)) != v:
            raise ValueError(f"prefix {v!r} is not canonical")
    elif kind == "inet_proto":
        if v not in ("tcp", "udp", "sctp"):
            raise ValueError(f"protocol {v!r}")
    elif kind == "inet_service":
        if not _INT.match(v) or not 0 <= int(v) <= 65535:
            raise ValueError(f"port {v!r}")
    elif kind == "integer":
        if not _INT.match(v) or int(v) >= 2**32:
            raise ValueError(f"integer {v!r}")
    elif kind == "mark":
        if not _MARK.match(v):
            raise ValueError(f"mark {v!r}")
    elif kind == "verdict":
        if not _VERDICT.match(v):
            raise ValueError(f"verdict {v!r}")
    else:
        raise ValueError(f"unknown field type {kind}")
    return v


_FIELD_RE = {
    "ipv4_addr": _IPV4.pattern[1:-1],
    "ipv4_prefix": _IPV4.pattern[1:-1] + r"/(3[0-2]|[12]?[0-9])",
    "inet_proto": "(tcp|udp|sctp)",
    "inet_service": "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0)",
    "integer": "[0-9]{1,9}",
    "mark": "0x[0-9a-f]{1,8}",
    "verdict": "(goto|jump) [a-z][a-z0-9-]{0,62}",
}
_ELEMENT_RE: dict[str, re.Pattern] = {}


def element_pattern(d: MapDef) -> re.Pattern:
    """One compiled pattern for a whole formatted element of this map: validating 40,000 elements
    with one match each costs a fraction of checking field by field."""
    pat = _ELEMENT_RE.get(d.name)
    if pat is None:
        text = r" \. ".join(_FIELD_RE[k] for k in d.key)
        if d.value is not None:
            text += " : " + r" \. ".join(_FIELD_RE[k] for k in d.value)
        pat = _ELEMENT_RE[d.name] = re.compile(f"^{text}$")
    return pat


@dataclass
class Op:
    verb: str        # add, delete, flush
    kind: str        # table, chain, rule, map, set, element
    name: str = ""   # chain / map name; for rule the chain
    body: object = None  # chain hook, rule text, map spec, or element list


@dataclass
class Transaction:
    family: str
    table: str
    ops: list[Op] = field(default_factory=list)

    # -- building (never raises) -----------------------------------------------------------
    def add_table(self) -> None:
        self.ops.append(Op("add", "table"))

    def delete_table(self) -> None:
        self.ops.append(Op("delete", "table"))

    def add_chain(self, name: str, hook=None) -> None:
        self.ops.append(Op("add", "chain", name, hook))

    def flush_chain(self, name: str) -> None:
        self.ops.append(Op("flush", "chain", name))

    def delete_chain(self, name: str) -> None:
        self.ops.append(Op("delete", "chain", name))

    def add_rule(self, chain: str, rule: str) -> None:
        self.ops.append(Op("add", "rule", chain, rule))

    def add_map(self, d: MapDef) -> None:
        self.ops.append(Op("add", d.kind, d.name, d.spec))

    def delete_map(self, d: MapDef) -> None:
        self.ops.append(Op("delete", d.kind, d.name))

    def add_elements(self, name: str, items) -> None:
        items = list(items)
        if items:
            self.ops.append(Op("add", "element", name, items))

    def delete_elements(self, name: str, keys) -> None:
        keys = [(k, None) for k in keys]
        if keys:
            self.ops.append(Op("delete", "element", name, keys))

    # -- reading ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ops)

    def element_ops(self) -> int:
        """How many elements this transaction adds or deletes (metrics, convergence tests)."""
        return sum(len(op.body) for op in self.ops if op.kind == "element")

    def script(self) -> str:
        """The nft script; ValueError on the first invalid value."""
        t = f"{self.family} {check_ident_table(self.table)}"
        lines: list[str] = []
        for op in self.ops:
            if op.kind == "table":
                lines.append(f"{op.verb} table {t}")
            elif op.kind == "chain":
                line = f"{op.verb} chain {t} {check_ident(op.name)}"
                if op.verb == "add" and op.body is not None:
                    h = op.body
                    line += f" {{ type {h.type} hook {h.hook} priority {h.priority} ; }}"
                lines.append(line)
            elif op.kind == "rule":
                if "\n" in op.body or ";" in op.body.replace(" ; ", ""):
                    raise ValueError(f"rule text {op.body!r} is not one statement")
                lines.append(f"add rule {t} {check_ident(op.name)} {op.body}")
            elif op.kind in ("map", "set"):
                if op.verb == "delete":
                    lines.append(f"delete {op.kind} {t} {check_ident(op.name)}")
                else:
                    lines.append(f"add {op.kind} {t} {check_ident(op.name)} {{ {op.body} }}")
            elif op.kind == "element":
                lines.extend(self._elements(t, op))
            else:
                raise ValueError(f"unknown operation {op}")
        return "\n".join(lines) + ("\n" if lines else "")

    def __str__(self) -> str:
        return self.script()

    def _elements(self, t: str, op: Op) -> list[str]:
        d = map_def(op.name)
        if d is None:
            raise ValueError(f"unknown map {op.name!r}")
        if op.verb == "add" and d.value is not None:
            texts = [f"{k} : {v}" for k, v in op.body]
            match = element_pattern(d).match
        else:
            texts = [k for k, _ in op.body]
            match = key_pattern(d).match
        # validate the text that goes out: every field of key and value against this map's types
        for text in texts:
            if not match(text):
                raise ValueError(f"{d.name}: element {text!r} does not match its type "
                                 f"{' . '.join(d.key)}{' : ' + ' . '.join(d.value) if d.value else ''}")
        return [f"{op.verb} element {t} {op.name} {{ {', '.join(texts[i:i + CHUNK])} }}"
                for i in range(0, len(texts), CHUNK)]


def key_pattern(d: MapDef) -> re.Pattern:
    pat = _ELEMENT_RE.get("key:" + d.name)
    if pat is None:
        pat = _ELEMENT_RE["key:" + d.name] = re.compile("^" + r" \. ".join(_FIELD_RE[k] for k in d.key) + "$")
    return pat


def check_ident_table(name: str) -> str:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$", name):
        raise ValueError(f"bad table name {name!r}")
    return name
