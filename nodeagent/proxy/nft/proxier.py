"""The nftables proxier: keeps the desired elements (per service port fragments), plans one
transaction per sync and hands it to the backend (real kernel or fake).

Full sync (at start, after a failure, periodically as drift repair): read our table back from the
kernel and send only the differences. A restart therefore never flushes anything: the rules the
previous process left keep carrying traffic, and the new process corrects only what changed
while it was away. A table written by another version or configuration (its `fingerprint`
differs) is rebuilt, still in one atomic transaction.

Partial sync (every other sync): only the elements whose effective value changed since the last
successful transaction, plus shared chains that started or stopped being used. A sync with no
change sends nothing at all.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ..model import NodeConfig, ServiceName, ServicePortName
from ..view import Change, PortView
from .backend import KernelTable
from .elements import ElementIndex
from .layout import (SELECTION, check_table_name, dynamic_chain, fingerprint, is_dynamic_chain,
                     map_def, maps_for, selection_map, static_chains, static_elements)
from .render import Elements, service_fragment
from .transaction import Transaction

log = logging.getLogger("nodeagent.proxy.nft")

STATIC_OWNER = ServicePortName(ServiceName("", ""), "", "")
_MISSING = object()


@dataclass
class SyncResult:
    full: bool
    elements: int = 0     # element additions + deletions sent
    operations: int = 0   # commands in the transaction
    rebuilt: bool = False
    duration: float = 0.0

    @property
    def sent_nothing(self) -> bool:
        return self.operations == 0


class NftProxier:
    mode = "nftables"
    family = "ip"

    def __init__(self, backend, cfg: NodeConfig, table: str = "nodeagent"):
        self.backend, self.cfg = backend, cfg
        self.table = check_table_name(table)
        self.maps = maps_for(cfg)
        self.static = static_chains(cfg)
        self.fingerprint = f"{fingerprint(cfg):#010x}"
        self.index = ElementIndex()
        self.index.set_fragment(STATIC_OWNER, static_elements(cfg))
        self.applied: dict[str, dict] | None = None   # kernel content after our last commit; None = unknown
        self.applied_chains: set[str] = set()         # shared dynamic chains present in the kernel
        self._pending: dict = {}                      # service port -> PortView (None: gone) not yet rendered

    # -- state -----------------------------------------------------------------------------
    def update(self, changes: dict[ServicePortName, Change]) -> None:
        """Note the service ports that changed (no kernel). They are rendered at the next sync:
        a first sync renders while `nft` already parses what came before (see `sync`)."""
        for spn, (_, after) in changes.items():
            self._pending[spn] = after

    def _render(self, view: PortView | None) -> Elements | None:
        return None if view is None else service_fragment(view.port, view.groups, self.cfg)

    def _fold_pending(self, rendered: dict | None = None) -> None:
        pending, self._pending = self._pending, {}
        rendered = rendered or {}
        for spn, view in pending.items():
            self.index.set_fragment(spn, rendered[spn] if spn in rendered else self._render(view))

    def needs_full_sync(self) -> bool:
        return self.applied is None

    def invalidate(self) -> None:
        self.applied = None

    # -- sync ------------------------------------------------------------------------------
    def sync(self, full: bool = False) -> SyncResult:
        start = time.perf_counter()
        full = full or self.applied is None
        kernel = self.backend.read(self.family, self.table) if full else None
        if full and kernel is None:
            # Creating the table: the script streams to `nft` as the fragments render, and the
            # index is brought up to date while nft evaluates and commits on the other core.
            stream = self.backend.stream()
            try:
                elements, operations, rendered = self._stream_create(stream)
            except BaseException:
                stream.abort()
                self._fold_pending()
                self.applied = None
                raise
            handle = stream.finish()
            result = SyncResult(True, elements, operations)
            self._fold_pending(rendered)
            self.index.take_dirty()
            try:
                handle.wait()
            except Exception:
                self.applied = None
                raise
            self._commit(None, True)
        else:
            self._fold_pending()
            if full:
                tx, rebuilt = self._plan_full(kernel)
            else:
                tx, rebuilt = self._plan_partial(), False
            result = SyncResult(full, tx.element_ops(), len(tx), rebuilt)
            try:
                script = tx.script()
                if script:
                    self.backend.apply(script)
            except Exception:
                self.applied = None   # the kernel may differ from what we think: read it back next time
                raise
            self._commit(tx, full)
        result.duration = time.perf_counter() - start
        return result

    def _create_all(self, tx: Transaction, elements: dict, wanted) -> None:
        """Every map, chain, rule and element of the table, in dependency order."""
        tx.add_table()
        for d in self.maps.values():
            tx.add_map(d)
        for name in wanted:
            if SELECTION.match(name):
                tx.add_map(selection_map(name))   # with its chain, in this transaction (layout.py)
        chains = [(n, self.static.get(n) or dynamic_chain(n, self.cfg)) for n in list(self.static) + list(wanted)]
        for name, c in chains:     # every chain first: rules and verdicts refer to them
            tx.add_chain(name, c.hook)
        for name, c in chains:
            for r in c.rules:
                tx.add_rule(name, r)
        wanted = set(wanted)
        for m in sorted(elements):
            if not map_def(m).dynamic and self._in_table(m, wanted):
                tx.add_elements(m, elements[m].items())

    def _in_table(self, m: str, wanted: set[str]) -> bool:
        """Whether map `m` exists in the table: a static one, or the endpoint map of a shared
        chain that some element points at. A service port whose verdict lost its key to a smaller
        one (two services with the same external IP and port) still owns endpoint elements, in
        the map of a chain that may not exist: those wait until an element points at it."""
        return m in self.maps or m[:-3] in wanted

    STREAM_OWNERS = 500   # service ports per piece of a streamed script

    def _stream_create(self, stream) -> tuple[int, int, dict]:
        """Write the whole table to `stream` as one transaction, rendering pending service ports
        on the way, in pieces of STREAM_OWNERS owners. Owners go in ascending order and the first
        to claim a key keeps it: the smallest owner wins, as in `render.render`. A shared chain
        (and its map) is added in the piece where an element first points at it. The fingerprint
        goes last (see backend.Stream). Returns (elements, operations, rendered fragments)."""
        sources: dict = dict(self.index.fragments)
        sources.update(self._pending)          # a PortView to render, or None: the owner is gone
        rendered: dict = {}
        written: dict[str, dict] = {}          # map -> key -> value, what the script adds
        parked: dict[str, list] = {}           # endpoint map -> elements waiting for its chain
        chains = set(self.static)
        verdict_maps = {m for m, d in self.maps.items() if d.value == ("verdict",)}
        fingerprint = None
        elements = operations = 0

        tx = Transaction(self.family, self.table)
        self._create_all(tx, {}, ())           # table, maps, static chains and their rules
        pieces: dict[str, list] = {}
        owners = sorted(sources)
        for i, owner in enumerate(owners, 1):
            frag = sources[owner]
            if frag is None or type(frag) is PortView:
                frag = rendered[owner] = self._render(frag)
                if frag is None:
                    continue
            for m, items in frag.items():
                if m == "fingerprint":
                    fingerprint = items
                    continue
                have = written.get(m)
                if have is None:
                    have = written[m] = {}
                new = [(k, v) for k, v in items.items() if k not in have]
                if not new:
                    continue
                have.update(new)
                if m in verdict_maps:
                    for _, v in new:
                        target = v[5:]
                        if target not in chains:
                            chains.add(target)
                            if is_dynamic_chain(target):
                                self._add_dynamic(tx, target)
                                if f"{target}-ep" in parked:
                                    pieces.setdefault(f"{target}-ep", []).extend(parked.pop(f"{target}-ep"))
                if not self._in_table(m, chains):
                    parked.setdefault(m, []).extend(new)   # see _in_table; dropped if no chain comes
                    continue
                pieces.setdefault(m, []).extend(new)
            if pieces and (i % self.STREAM_OWNERS == 0 or i == len(owners)):
                for m in sorted(pieces):   # after the chains and maps this piece added
                    tx.add_elements(m, pieces[m])
                elements += tx.element_ops()
                operations += len(tx)
                stream.write(tx.script())
                tx, pieces = Transaction(self.family, self.table), {}
        if fingerprint is None:
            raise ValueError("the static fragment (fingerprint) is missing")
        tx.add_elements("fingerprint", fingerprint.items())
        elements += tx.element_ops()
        operations += len(tx)
        stream.write(tx.script())
        return elements, operations, rendered

    def _wanted_dynamic(self) -> set[str]:
        return {t for t in self.index.targets if is_dynamic_chain(t)}

    def _add_dynamic(self, tx: Transaction, name: str) -> None:
        if SELECTION.match(name):
            tx.add_map(selection_map(name))
        tx.add_chain(name)
        for r in dynamic_chain(name, self.cfg).rules:
            tx.add_rule(name, r)

    def _delete_dynamic(self, tx: Transaction, name: str, has_map: bool = True) -> None:
        tx.flush_chain(name)
        tx.delete_chain(name)
        if has_map and SELECTION.match(name):
            tx.delete_map(selection_map(name))

    def _plan_partial(self) -> Transaction:
        tx = Transaction(self.family, self.table)
        wanted = self._wanted_dynamic()
        dirty = self.index.take_dirty()
        eff, applied = self.index.effective, self.applied
        for name in sorted(wanted - self.applied_chains):
            self._add_dynamic(tx, name)
            if SELECTION.match(name):   # its map starts empty: it gets every element it should hold
                dirty.setdefault(f"{name}-ep", set()).update(eff.get(f"{name}-ep", ()))
        adds: list[tuple[str, list]] = []
        for m in sorted(dirty):
            if not self._in_table(m, wanted):
                continue   # no such map in the table (see _in_table); a chain that goes takes its map along
            e, a = eff.get(m, {}), applied.setdefault(m, {})
            dels, add = [], []
            for k in dirty[m]:
                old, new = a.get(k, _MISSING), e.get(k, _MISSING)
                if old == new:
                    continue
                if old is not _MISSING:
                    dels.append(k)
                if new is not _MISSING:
                    add.append((k, new))
            tx.delete_elements(m, sorted(dels))
            adds.append((m, sorted(add)))
        for m, add in adds:
            tx.add_elements(m, add)
        for name in sorted(self.applied_chains - wanted):
            self._delete_dynamic(tx, name)
        return tx

    def _plan_full(self, kernel: KernelTable) -> tuple[Transaction, bool]:
        self.index.take_dirty()
        tx = Transaction(self.family, self.table)
        wanted = sorted(self._wanted_dynamic())
        eff = self.index.effective
        broken = [n for n in self.static if kernel.hooks.get(n) not in (None, self._hook(n))]
        broken += [n for n in wanted if SELECTION.match(n) and (
            n not in kernel.chains or f"{n}-ep" not in kernel.maps
            or kernel.chains[n] != len(dynamic_chain(n, self.cfg).rules))]
        if kernel.fingerprint != self.fingerprint or set(self.maps) - set(kernel.maps) or broken:
            # Another version or configuration wrote this table, or a shared chain is damaged (its
            # map cannot get a new rule in a later transaction, see layout.py): rebuild it, still in
            # one atomic transaction, so traffic keeps flowing.
            log.warning("table %s: %s; rebuilding it in one transaction", self.table,
                        f"damaged chains {broken}" if broken else "written by another version or configuration")
            tx.add_table()
            tx.delete_table()
            self._create_all(tx, eff, wanted)
            return tx, True

        # Reconcile with what is there: only differences are sent.
        for name in wanted:
            if name not in kernel.chains:   # an affinity-record chain (selection chains rebuild above)
                self._add_dynamic(tx, name)
            elif kernel.chains[name] != len(dynamic_chain(name, self.cfg).rules):
                tx.flush_chain(name)
                for r in dynamic_chain(name, self.cfg).rules:
                    tx.add_rule(name, r)
        for name, c in self.static.items():
            if kernel.chains.get(name) is None:
                tx.add_chain(name, c.hook)
                for r in c.rules:
                    tx.add_rule(name, r)
            elif kernel.chains[name] != len(c.rules):
                log.warning("chain %s has %d rules, expected %d: repairing", name, kernel.chains[name], len(c.rules))
                tx.flush_chain(name)
                for r in c.rules:
                    tx.add_rule(name, r)
        maps = sorted(set(self.maps) | {f"{n}-ep" for n in wanted if SELECTION.match(n)})
        adds = []
        for m in maps:
            if map_def(m).dynamic:
                continue
            have, want = kernel.maps.get(m, {}), eff.get(m, {})
            tx.delete_elements(m, sorted(k for k, v in have.items() if want.get(k, _MISSING) != v))
            adds.append((m, sorted((k, v) for k, v in want.items() if have.get(k, _MISSING) != v)))
        for m, add in adds:
            tx.add_elements(m, add)
        known = set(self.static) | set(wanted)
        for name in sorted(set(kernel.chains) - known):
            self._delete_dynamic(tx, name, has_map=f"{name}-ep" in kernel.maps)
        for m in sorted(set(kernel.maps) - set(maps)):
            if m.endswith("-ep") and m[:-3] in kernel.chains:
                continue   # deleted with its chain above
            d = map_def(m)
            if d is not None and not d.dynamic:
                tx.delete_map(d)
        return tx, False

    def _hook(self, name: str):
        h = self.static[name].hook
        if h is None:
            return None
        from .tracer import _priority
        return (h.type, h.hook, _priority(h.priority))

    def _commit(self, tx: Transaction | None, full: bool) -> None:
        """The transaction is in the kernel: what we sent is now what is there."""
        wanted = self._wanted_dynamic()
        if full:
            self.applied = {m: dict(v) for m, v in self.index.effective.items()
                            if not map_def(m).dynamic and self._in_table(m, wanted)}
        else:
            for op in tx.ops:
                if op.kind == "element":
                    a = self.applied.setdefault(op.name, {})
                    if op.verb == "delete":
                        for k, _ in op.body:
                            a.pop(k, None)
                    else:
                        a.update(op.body)
            # a deleted selection chain took its map and the map's elements along; should the
            # chain come back, its map is created empty and every slot must be sent again
            for name in self.applied_chains - wanted:
                self.applied.pop(f"{name}-ep", None)
        self.applied_chains = wanted

    # -- after a successful sync ---------------------------------------------------------------
    def after_sync(self, changes: dict[ServicePortName, Change]) -> int:
        """Delete affinity entries that point at endpoints a service no longer has, so that a
        sticky client moves on at once instead of waiting for its entry to time out. Best
        effort, in its own transaction: the main sync has already succeeded. Returns how many."""
        stale: dict[tuple, set[str]] = {}   # (proto, port, entry ip or None for node ports) -> endpoints
        for before, after in changes.values():
            if before is None or not before.port.affinity_timeout:
                continue
            old = {f"{e.ip} . {e.port}" for g in (before.groups.cluster, before.groups.local) for e in g}
            new = {f"{e.ip} . {e.port}" for g in (after.groups.cluster, after.groups.local) for e in g} if after else set()
            gone = old - new
            if not gone:
                continue
            sp = before.port
            for ip in (sp.cluster_ip,) + sp.external_ips + sp.load_balancer_ips:
                stale.setdefault((sp.protocol, str(sp.port), ip), set()).update(gone)
            if sp.node_port:
                stale.setdefault((sp.protocol, str(sp.node_port), None), set()).update(gone)
        if not stale:
            return 0
        for attempt in range(3):   # an entry may time out between reading and deleting: read again
            entries = self.backend.read_map(self.family, self.table, "affinity")
            doomed = []
            for key, value in entries.items():
                _, daddr, proto, port = key.split(" . ")
                gone = stale.get((proto, port, daddr)) or stale.get((proto, port, None))
                if gone and value in gone:
                    doomed.append(key)
            if not doomed:
                return 0
            tx = Transaction(self.family, self.table)
            tx.delete_elements("affinity", sorted(doomed))
            try:
                self.backend.apply(tx.script())
                return len(doomed)
            except Exception as err:
                log.info("deleting %d stale affinity entries: %s (retrying)", len(doomed), err)
        return 0

    # -- reading -----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        eff = self.index.effective
        return {"elements": sum(len(v) for v in eff.values()),
                "chains": len(self.static) + len(self.applied_chains),
                "rules": sum(len(c.rules) for c in self.static.values()) + sum(
                    len(dynamic_chain(n, self.cfg).rules) for n in self.applied_chains)}

    def cleanup(self) -> bool:
        """Remove our table, and only it."""
        self.applied = None
        return self.backend.delete_table(self.family, self.table)
