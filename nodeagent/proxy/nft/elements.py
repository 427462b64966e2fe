"""The desired map elements as the union of per-owner fragments, kept up to date incrementally.

Each service port owns the fragment the renderer made for it. Replacing one fragment touches only
that fragment's keys, and records which keys' effective values changed ("dirty"): a partial sync
sends exactly those. Two owners may claim one key (two services with the same external IP and
port); the smallest owner wins, as in `render.render`, and the loser takes over if the winner goes.
Shared elements (the hairpin pair of an endpoint that serves two services) stay while any owner
still claims them.
"""
from __future__ import annotations

from collections import Counter

from .render import Elements


class ElementIndex:
    def __init__(self) -> None:
        self.fragments: dict[object, Elements] = {}
        # map -> key -> the owner, or a sorted list of owners when several claim the key
        self.claims: dict[str, dict[tuple, object]] = {}
        self.effective: dict[str, dict[tuple, object]] = {}
        self.dirty: dict[str, set[tuple]] = {}
        self.targets: Counter = Counter()                  # chain name -> elements pointing at it

    def owners(self) -> list:
        return list(self.fragments)

    def set_fragment(self, owner, fragment: Elements | None) -> None:
        old = self.fragments.pop(owner, None) or {}
        new = {m: items for m, items in (fragment or {}).items() if items}
        if new:
            self.fragments[owner] = new
        for m in old.keys() | new.keys():
            o, n = old.get(m) or {}, new.get(m) or {}
            if o == n:
                continue
            claims = self.claims.setdefault(m, {})
            eff = self.effective.setdefault(m, {})
            dirty = self.dirty.setdefault(m, set())
            if not o and claims.keys().isdisjoint(n):
                # Bulk path (every fragment of a first sync): new keys nobody claims. Keys are
                # in `effective` exactly when someone claims them, so no value can change here.
                claims.update(dict.fromkeys(n, owner))
                eff.update(n)
                dirty.update(n)
                if is_verdict(next(iter(n.values()))):
                    self.targets.update(v[5:] for v in n.values())
                continue
            for key in o.keys() - n.keys():
                h = claims[key]
                if type(h) is list:
                    h.remove(owner)
                    if len(h) == 1:
                        h = claims[key] = h[0]
                        self._set(m, eff, dirty, key, self.fragments[h][m][key])
                    else:
                        self._set(m, eff, dirty, key, self.fragments[h[0]][m][key])
                else:
                    del claims[key]
                    self._set(m, eff, dirty, key, _MISSING)
            for key, value in n.items():
                h = claims.get(key)
                if h is None:                      # the common case: nobody else has this key
                    claims[key] = owner
                    if key not in eff:             # and nobody had it: inline _set's fast path
                        eff[key] = value
                        dirty.add(key)
                        if is_verdict(value):
                            self.targets[value[5:]] += 1
                    else:
                        self._set(m, eff, dirty, key, value)
                elif type(h) is list:
                    if owner not in h:
                        h.append(owner)
                        h.sort()
                    self._set(m, eff, dirty, key, self.fragments[h[0]][m][key])
                elif h == owner:
                    if o.get(key, _MISSING) != value:
                        self._set(m, eff, dirty, key, value)
                else:
                    h = claims[key] = sorted([h, owner])
                    self._set(m, eff, dirty, key, self.fragments[h[0]][m][key])

    def _set(self, m: str, eff: dict, dirty: set, key: tuple, new) -> None:
        old = eff.get(key, _MISSING)
        if old == new:
            return
        if new is _MISSING:
            del eff[key]
        else:
            eff[key] = new
        if is_verdict(old):
            t = old[5:]
            self.targets[t] -= 1
            if not self.targets[t]:
                del self.targets[t]
        if is_verdict(new):
            self.targets[new[5:]] += 1
        dirty.add(key)

    def take_dirty(self) -> dict[str, set[tuple]]:
        dirty, self.dirty = self.dirty, {}
        return {m: d for m, d in dirty.items() if d}

    def mark_all_dirty(self) -> None:
        for m, items in self.effective.items():
            self.dirty.setdefault(m, set()).update(items)


def is_verdict(value) -> bool:
    return value.__class__ is str and value.startswith(("goto ", "jump "))


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
