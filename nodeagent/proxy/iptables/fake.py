"""A state-based fake of iptables for tier-2 tests: it applies the very `iptables-restore --noflush`
text the real backend would send, and answers `iptables-save`, `-C` and `-I` like the real
binaries.

Kernel behaviours it enforces, because our sync logic relies on them:
* each table commits at its `COMMIT`, on a copy, swapped in only when the whole table succeeded
  (an error in a later table leaves the earlier ones committed, as iptables-restore does);
* `:CHAIN - [0:0]` creates a user chain or flushes an existing one; built-in chains are never
  flushed by `--noflush`;
* a jump to a chain that does not exist fails; `-X` of a missing, non-empty or still referenced
  chain fails; `-D` of a rule that is not there fails; loops fail;
* targets are checked against the hooks that reach them (DNAT only from PREROUTING/OUTPUT,
  MASQUERADE only from POSTROUTING, REJECT only in filter), as the kernel does at commit;
* every rule is parsed by the tracer's grammar when it is added, so a fragment the tracer does
  not know fails the test at once;
* a `recent` list disappears when the last rule naming it goes, as xt_recent's do.
"""
from __future__ import annotations

import copy
import shlex
import time
from dataclasses import dataclass, field

from .backend import IptablesError, _check_spec
from .tracer import BUILTIN_TARGETS, parse_rule

BUILTIN = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}
_HOOKS_OK = {"DNAT": {"PREROUTING", "OUTPUT"}, "MASQUERADE": {"POSTROUTING"}}


@dataclass
class FakeChain:
    rules: list[str] = field(default_factory=list)
    policy: str | None = None   # built-in chains only


def _tokens(rule: str) -> list[str]:
    return shlex.split(rule)


class FakeIptables:
    """Same interface as IptablesBackend (restore, save, ensure_rule, saves_of_both)."""

    def __init__(self, clock=time.monotonic, backend: str = "legacy"):
        self.backend = backend
        self.tables: dict[str, dict[str, FakeChain]] = {
            t: {c: FakeChain(policy="ACCEPT") for c in chains} for t, chains in BUILTIN.items()}
        self.recent: dict[str, dict[str, float]] = {}
        self.clock = clock
        self.restores = 0
        self.last_text = ""
        self.inserted = 0
        self.fail_next: str | None = None
        self.other_backend_save = ""   # what `iptables-<other>-save` would print

    # -- the backend interface -------------------------------------------------------------
    def restore(self, text: str) -> None:
        if self.fail_next:
            msg, self.fail_next = self.fail_next, None
            raise IptablesError(msg)
        table, work = None, None
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            try:
                if line.startswith("*"):
                    if table is not None:
                        raise IptablesError(f"table {table} has no COMMIT")
                    table = line[1:]
                    if table not in self.tables:
                        raise IptablesError(f"unknown table {table!r}")
                    work = copy.deepcopy(self.tables[table])
                elif line == "COMMIT":
                    if table is None:
                        raise IptablesError("COMMIT outside a table")
                    self._check_table(table, work)
                    self.tables[table] = work
                    table, work = None, None
                elif table is None:
                    raise IptablesError("command outside a table")
                else:
                    self._command(table, work, line)
            except (IptablesError, ValueError) as err:
                raise IptablesError(f"iptables-restore: line {n} failed: {err}: {line[:200]}") from None
        if table is not None:
            raise IptablesError(f"iptables-restore: table {table} has no COMMIT")
        self.restores += 1
        self.last_text = text
        self._prune_recent()

    def save(self, table: str | None = None, backend: str | None = None) -> str:
        if backend is not None and backend != self.backend:
            return self.other_backend_save
        out = []
        for t in ([table] if table else ["filter", "nat"]):
            chains = self.tables[t]
            out.append(f"*{t}\n")
            out += [f":{c} {ch.policy or '-'} [0:0]\n" for c, ch in chains.items() if ch.policy]
            out += [f":{c} - [0:0]\n" for c, ch in sorted(chains.items()) if not ch.policy]
            out += [f"-A {c} {r}\n" for c, ch in chains.items() if ch.policy for r in ch.rules]
            out += [f"-A {c} {r}\n" for c, ch in sorted(chains.items()) if not ch.policy for r in ch.rules]
            out.append("COMMIT\n")
        return "".join(out)

    def ensure_rule(self, table: str, chain: str, spec) -> bool:
        spec = _check_spec(table, chain, spec)
        rules = self.tables[table][chain].rules
        if any(_tokens(r) == spec for r in rules):
            return False
        text = " ".join(spec)
        work = copy.deepcopy(self.tables[table])
        self._add(table, work, chain, text, 0)
        self._check_table(table, work)
        self.tables[table] = work
        self.inserted += 1
        return True

    def saves_of_both(self) -> dict[str, str]:
        other = "nft" if self.backend == "legacy" else "legacy"
        return {self.backend: self.save(), other: self.other_backend_save}

    # -- restore commands ------------------------------------------------------------------
    def _command(self, table: str, work: dict[str, FakeChain], line: str) -> None:
        if line.startswith(":"):
            parts = line[1:].split()
            if len(parts) != 3 or not parts[2].startswith("["):
                raise IptablesError("bad chain line")
            name, policy = parts[0], parts[1]
            if name in BUILTIN[table]:
                if policy not in ("ACCEPT", "DROP"):
                    raise IptablesError("bad policy")
                work[name].policy = policy          # --noflush: built-in chains keep their rules
            elif policy != "-":
                raise IptablesError("a user chain has no policy")
            elif name in BUILTIN_TARGETS or not name.replace("-", "").replace("_", "").isalnum() or len(name) > 28:
                raise IptablesError(f"bad chain name {name!r}")
            elif name in work:
                work[name].rules.clear()
            else:
                work[name] = FakeChain()
            return
        verb, _, rest = line.partition(" ")
        chain, _, spec = rest.partition(" ")
        if verb not in ("-A", "-I", "-D", "-X", "-F"):
            raise IptablesError(f"command {verb} not supported by the fake")
        if chain not in work:
            raise IptablesError(f"No chain/target/match by that name ({chain})")
        if verb == "-A":
            self._add(table, work, chain, spec, None)
        elif verb == "-I":
            pos, _, r = spec.partition(" ")
            if pos.isdigit():
                self._add(table, work, chain, r, int(pos) - 1)
            else:
                self._add(table, work, chain, spec, 0)
        elif verb == "-D":
            rules = work[chain].rules
            want = _tokens(spec)
            for i, r in enumerate(rules):
                if _tokens(r) == want:
                    del rules[i]
                    break
            else:
                raise IptablesError("Bad rule (does a matching rule exist in that chain?)")
        elif verb == "-F":
            if spec:
                raise IptablesError("unexpected text after -F")
            work[chain].rules.clear()
        else:
            if spec:
                raise IptablesError("unexpected text after -X")
            if work[chain].policy:
                raise IptablesError("cannot delete a built-in chain")
            if work[chain].rules:
                raise IptablesError("Directory not empty (chain has rules)")
            if any(self._target(r) == chain for ch in work.values() for r in ch.rules):
                raise IptablesError("Too many links (chain is referenced)")
            del work[chain]

    @staticmethod
    def _target(rule: str) -> str | None:
        t = parse_rule(rule).target
        return t.args[0] if t is not None and t.kind == "jump" else None

    def _add(self, table, work, chain, spec, pos) -> None:
        rule = parse_rule(spec)    # ValueError for a fragment the tracer does not know
        t = rule.target
        if t is not None and t.kind == "jump" and (t.args[0] not in work or work[t.args[0]].policy):
            raise IptablesError(f"No chain/target/match by that name ({t.args[0]})")
        if t is not None and t.kind == "REJECT" and table != "filter":
            raise IptablesError("REJECT is valid in the filter table only")
        if t is not None and t.kind in ("DNAT", "MASQUERADE") and table != "nat":
            raise IptablesError(f"{t.kind} is valid in the nat table only")
        rules = work[chain].rules
        rules.insert(len(rules) if pos is None else pos, spec)

    def _check_table(self, table: str, work: dict[str, FakeChain]) -> None:
        """At commit, as the kernel does: no loops, and every target reachable only from hooks
        where it is valid."""
        for hook in BUILTIN[table]:
            self._reach(work, hook, hook, ())

    def _reach(self, work, hook, chain, path) -> None:
        if chain in path:
            raise IptablesError(f"Too many levels of symbolic links (loop {' -> '.join(path + (chain,))})")
        for r in work[chain].rules:
            t = parse_rule(r).target
            if t is None:
                continue
            if t.kind == "jump":
                self._reach(work, hook, t.args[0], path + (chain,))
            elif t.kind in _HOOKS_OK and hook not in _HOOKS_OK[t.kind]:
                raise IptablesError(f"{t.kind} reached from {hook} (in {chain}): Invalid argument")

    # -- xt_recent ---------------------------------------------------------------------------
    def _prune_recent(self) -> None:
        names = {m.args[0] for t in self.tables.values() for ch in t.values() for r in ch.rules
                 for m in parse_rule(r).matches if m.op.startswith("recent_")}
        for n in list(self.recent):
            if n not in names:
                del self.recent[n]

    def recent_check(self, name: str, src: str, seconds: int) -> bool:
        """`--rcheck --seconds N --reap`: seen within N seconds (older entries are reaped)."""
        lst = self.recent.get(name, {})
        seen = lst.get(src)
        if seen is None:
            return False
        if self.clock() - seen > seconds:
            del lst[src]
            return False
        return True

    def recent_set(self, name: str, src: str) -> None:
        self.recent.setdefault(name, {})[src] = self.clock()

    # -- for tests -----------------------------------------------------------------------------
    def rules(self, table: str, chain: str) -> list[str]:
        return list(self.tables[table].get(chain, FakeChain()).rules)
