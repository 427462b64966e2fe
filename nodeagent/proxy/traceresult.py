"""What the packet tracers of both modes (nft/tracer.py, iptables/tracer.py) return: the
outcomes of one packet (several when the ruleset chooses at random) and their summary."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    verdict: str                 # ACCEPT, DROP, REJECT
    endpoint: str | None = None  # "ip:port" when DNATed
    masquerade: bool = False
    reject: str = ""             # "tcp reset" or "icmp port-unreachable"
    probability: float = 1.0     # of this branch, where a rule chose at random
    mark: int = 0                # the packet mark when it left


@dataclass
class Trace:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        vs = {o.verdict for o in self.outcomes}
        return vs.pop() if len(vs) == 1 else "MIXED:" + ",".join(sorted(vs))

    @property
    def endpoints(self) -> list[str]:
        return sorted({o.endpoint for o in self.outcomes if o.endpoint})

    @property
    def spread(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for o in self.outcomes:
            key = o.endpoint or o.verdict
            out[key] = out.get(key, 0.0) + o.probability
        return out

    @property
    def masquerade(self):
        ms = {o.masquerade for o in self.outcomes}
        return ms.pop() if len(ms) == 1 else "mixed"

    @property
    def reject(self) -> str:
        rs = {o.reject for o in self.outcomes}
        return rs.pop() if len(rs) == 1 else "mixed"

    @property
    def result(self) -> str:
        """kube-proxy's summary: the endpoints, REJECT, DROP or "no-match"."""
        if self.verdict == "ACCEPT":
            return ", ".join(self.endpoints) or "no-match"
        return self.verdict

    def __repr__(self) -> str:
        return f"Trace({self.result}, masquerade={self.masquerade}, reject={self.reject!r})"
