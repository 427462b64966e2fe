"""The iptables proxier: one fragment of rule text per service port, one `iptables-restore
--noflush` per sync.

Full sync (start, after a failure, every --full-sync-period): read our chains back with
iptables-save (to delete the ones a previous process left that are no longer wanted), restore
all our chains, then make sure the jump rules from the built-in chains are there (`-C`, else `-I`
at the top): they are the only rules we own outside our chains, recognised by their comment.
A restart therefore never flushes: the restore replaces our chains in one commit per table.

Partial sync (every other sync, as kube-proxy's since 1.28): only the chains of the service ports
whose rules changed are declared and rewritten, plus the dispatch chains (NA-SERVICES,
NA-NODEPORTS and the filter ones) whole, since they hold one rule per service in an order that
matters; chains of removed service ports are deleted. A chain not named in the text keeps its
rules. libiptc still loads and rewrites each whole table per commit, but the text to parse
shrinks from every chain to a rule per service. A sync with no changed fragment sends nothing.

Each table commits atomically; nat and filter are two commits in one process. A failure marks
the proxier for a full sync, which rewrites both.
"""
from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass

from ..model import NodeConfig, ServicePortName
from ..view import Change
from .backend import mismatch_warning
from .render import FILTER_STATIC, JUMPS, NAT_STATIC, Fragment, our_chains, render, service_fragment, static_rules

log = logging.getLogger("nodeagent.proxy.iptables")


@dataclass
class SyncResult:
    full: bool
    elements: int = 0     # rules written (the metric the runner exports as "elements sent")
    operations: int = 0   # restore runs + jump rules inserted
    rebuilt: bool = False
    duration: float = 0.0
    stale_chains: int = 0
    jumps_added: int = 0

    @property
    def sent_nothing(self) -> bool:
        return self.operations == 0


class IptablesProxier:
    mode = "iptables"

    def __init__(self, backend, cfg: NodeConfig, check_backend_mismatch: bool = True):
        self.backend, self.cfg = backend, cfg
        self.fragments: dict[ServicePortName, Fragment] = {}
        self._order: list[ServicePortName] | None = None   # sorted keys, None = re-sort
        self.applied: dict[str, set[str]] | None = None    # table -> our chains after the last commit
        self._changed: set[ServicePortName] = set()          # fragments not yet committed
        self._check_mismatch = check_backend_mismatch
        self.mismatch: str | None = None
        self._static_rules = sum(t.count("\n") for t in static_rules(cfg))

    # -- state -----------------------------------------------------------------------------
    def update(self, changes: dict[ServicePortName, Change]) -> None:
        for spn, (_, after) in changes.items():
            old = self.fragments.get(spn)
            if after is None:
                if old is not None:
                    del self.fragments[spn]
                    self._order = None
                    self._changed.add(spn)
                continue
            frag = service_fragment(after.port, after.groups, self.cfg)
            if frag != old:
                if old is None:
                    self._order = None
                self.fragments[spn] = frag
                self._changed.add(spn)

    def needs_full_sync(self) -> bool:
        return self.applied is None

    def invalidate(self) -> None:
        self.applied = None

    def _sorted(self) -> list[Fragment]:
        if self._order is None:
            self._order = sorted(self.fragments)
        return [self.fragments[k] for k in self._order]

    def wanted(self, frags=None) -> dict[str, set[str]]:
        frags = self._sorted() if frags is None else frags
        nat = set(NAT_STATIC)
        for f in frags:
            nat.update(f.chains)
        return {"nat": nat, "filter": set(FILTER_STATIC)}

    # -- sync ------------------------------------------------------------------------------
    def sync(self, full: bool = False) -> SyncResult:
        start = time.perf_counter()
        full = full or self.applied is None
        frags = self._sorted()
        wanted = self.wanted(frags)
        result = SyncResult(full)
        try:
            if full:
                if self._check_mismatch and self.mismatch is None and hasattr(self.backend, "saves_of_both"):
                    self._warn_mismatch()
                saves = {t: self.backend.save(t) for t in ("nat", "filter")}
                existing = {t: our_chains(saves[t]) for t in saves}
                self._ensure_jumps(saves, existing, result)
            else:
                existing = self.applied
            stale = {t: sorted(existing[t] - wanted[t]) for t in ("nat", "filter")}
            result.stale_chains = len(stale["nat"]) + len(stale["filter"])
            if full or self._changed or result.stale_chains:
                changed = None if full else [self.fragments[s] for s in sorted(self._changed) if s in self.fragments]
                text = render(frags, self.cfg, stale["nat"], stale["filter"], changed)
                self.backend.restore(text)
                result.operations += 1
                result.elements = text.count("\n-A ")
        except Exception:
            self.applied = None   # unknown: read back next time
            raise
        self.applied = wanted
        self._changed = set()
        result.duration = time.perf_counter() - start
        return result

    def _ensure_jumps(self, saves: dict[str, str], existing: dict[str, set[str]], result: SyncResult) -> None:
        """The jump rules from the built-in chains: checked in the iptables-save text we read
        anyway, and only the missing ones go through `iptables -C` then `-I` (every iptables call
        loads the whole table: with 10,000 services six `-C` alone took 0.8 s). This runs before
        the big restore, so on a first start they are inserted while the table is still small;
        the static chains they point at are created first when missing (a creation flushes
        nothing, so a restart never empties a live chain here)."""
        missing = [(t, c, spec) for t, c, spec in JUMPS if not has_rule(saves[t], c, spec)]
        if not missing:
            return
        create = {t: sorted({spec[-1] for tt, _, spec in missing if tt == t} - existing[t]) for t in ("filter", "nat")}
        text = "".join(f"*{t}\n" + "".join(f":{c} - [0:0]\n" for c in chains) + "COMMIT\n"
                       for t, chains in create.items() if chains)
        if text:
            self.backend.restore(text)
            result.operations += 1
            for t, chains in create.items():
                existing[t].update(chains)
        for table, chain, spec in missing:
            if self.backend.ensure_rule(table, chain, spec):
                log.info("added the jump rule %s/%s -> %s", table, chain, spec[-1])
                result.jumps_added += 1
                result.operations += 1

    def _warn_mismatch(self) -> None:
        try:
            self.mismatch = mismatch_warning(self.backend.backend, self.backend.saves_of_both()) or ""
        except Exception as err:   # a check, never a reason to fail a sync
            log.debug("backend check failed: %s", err)
            self.mismatch = ""
        if self.mismatch:
            log.warning("%s", self.mismatch)

    # -- reading -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        frags = self.fragments.values()
        return {"chains": len(NAT_STATIC) + len(FILTER_STATIC) + sum(len(f.chains) for f in frags),
                "rules": self._static_rules + sum(f.rules for f in frags)}

    def cleanup(self) -> bool:
        """Remove our chains and our jump rules from the built-in chains, nothing else, in one
        restore (one commit per table). True when there was something to remove."""
        self.applied = None
        text = cleanup_text({t: self.backend.save(t) for t in ("filter", "nat")})
        if not text:
            return False
        self.backend.restore(text)
        return True


def has_rule(save_text: str, chain: str, spec) -> bool:
    """Whether an iptables-save text has `-A chain spec` (compared token by token, so quoting
    differences do not matter). Pure."""
    want = list(spec)
    head = f"-A {chain} "
    return any(shlex.split(line[len(head):]) == want for line in save_text.splitlines() if line.startswith(head))


def cleanup_text(saves: dict[str, str]) -> str:
    """Restore text that deletes our jump rules (found by their comment and target) and flushes
    and deletes our chains, from the iptables-save text of each table. Pure."""
    from .render import COMMENT, OUR_CHAIN
    out = []
    for table, text in saves.items():
        chains = sorted(our_chains(text))
        jumps = []
        for line in text.splitlines():
            if not line.startswith("-A "):
                continue
            chain, _, rest = line[3:].partition(" ")
            spec = f" {rest}"
            target = spec.rsplit(" -j ", 1)[1].split(" ", 1)[0] if " -j " in spec else ""
            if not chain.startswith("NA-") and OUR_CHAIN.match(target) and (
                    f'--comment "{COMMENT}"' in rest or f"--comment {COMMENT} " in rest):
                jumps.append(f"-D {chain} {rest}\n")
        if not chains and not jumps:
            continue
        out.append(f"*{table}\n")
        out += [f":{c} - [0:0]\n" for c in chains]
        out += jumps
        out += [f"-X {c}\n" for c in chains]
        out.append("COMMIT\n")
    return "".join(out)
