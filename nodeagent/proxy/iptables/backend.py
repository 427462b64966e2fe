"""The one place that runs the iptables binaries: `iptables-<backend>-restore --noflush` for a sync,
`iptables-<backend>-save` to read our chains back, `iptables-<backend> -C / -I` for the jump rules
from the built-in chains. Argument lists only (no shell); the restore text goes through stdin.
`-w 5` waits for the xtables lock (a host-wide file, shared with every other iptables user).

Which backend: legacy by default. STYLE.md measured `iptables-legacy-restore` at 0.6 s for 10,000
services and iptables-nft at 1.5 s; `nft` is available for hosts whose other rules live there
(kubernetes/kubernetes#71305: rules split between the two backends are evaluated in an order
nobody chose, and a firewall in one never sees the other's NAT). `mismatch_warning` is the check.
"""
from __future__ import annotations

import logging
import re
import subprocess

from ..netns import command_prefix
from .render import COMMENT, PREFIX

log = logging.getLogger("nodeagent.proxy.iptables")

BACKENDS = ("legacy", "nft")
TABLES = ("filter", "nat")
_BUILTIN = {"filter": ("INPUT", "FORWARD", "OUTPUT"), "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")}
_ARG = re.compile(r"^[A-Za-z0-9!./:_-]{1,64}$")


class IptablesError(RuntimeError):
    pass


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"iptables backend {name!r} is not one of {BACKENDS}")
    return name


def _check_spec(table: str, chain: str, spec) -> list[str]:
    if table not in TABLES or chain not in _BUILTIN[table]:
        raise ValueError(f"{table}/{chain} is not a built-in chain we hook")
    for a in spec:
        if not _ARG.match(a):
            raise ValueError(f"bad iptables argument {a!r}")
    return list(spec)


def foreign_rules(save_text: str) -> int:
    """How many rules of an iptables-save text are not ours (not in an NA- chain, not our jump)."""
    n = 0
    for line in save_text.splitlines():
        if not line.startswith("-A "):
            continue
        chain = line[3:].split(" ", 1)[0]
        if chain.startswith(PREFIX):
            continue
        if re.search(rf'--comment "?{COMMENT}"? ', line) and f" -j {PREFIX}" in line:
            continue
        n += 1
    return n


def mismatch_warning(using: str, saves: dict[str, str]) -> str | None:
    """kubernetes#71305: the host's other rules (kubelet's, the firewall's, a CNI plugin's) should
    be in the backend we write to. `saves` maps backend -> its iptables-save text (all tables).
    Returns a warning when the other backend holds more foreign rules than ours (the rule the
    iptables-wrapper script uses to pick a backend), else None. Pure."""
    other = "nft" if using == "legacy" else "legacy"
    mine, theirs = foreign_rules(saves.get(using, "")), foreign_rules(saves.get(other, ""))
    if theirs > mine:
        return (f"iptables-{other} holds {theirs} rules of other programs and iptables-{using} {mine}: this "
                f"proxy writes iptables-{using}, so the two rule sets run side by side in an order nobody "
                f"chose (kubernetes/kubernetes#71305); use --iptables-backend {other}")
    return None


class IptablesBackend:
    def __init__(self, backend: str = "legacy", netns: str | None = None, timeout: float = 60.0):
        self.backend = check_backend(backend)
        self.prefix = command_prefix(netns)
        self.timeout = timeout

    def _run(self, args: list[str], stdin: bytes | None = None, ok=(0,)) -> subprocess.CompletedProcess:
        r = subprocess.run(self.prefix + args, input=stdin, capture_output=True, timeout=self.timeout)
        if r.returncode not in ok:
            raise IptablesError(f"{args[0]} failed ({r.returncode}): {r.stderr.decode(errors='replace').strip()[:2000]}")
        return r

    def restore(self, text: str) -> None:
        """One `iptables-restore --noflush`: each table's COMMIT is atomic (libiptc replaces the
        whole table in one setsockopt); a failure leaves that table as it was."""
        if text:
            self._run([f"iptables-{self.backend}-restore", "--noflush", "-w", "5"], text.encode())

    def save(self, table: str | None = None, backend: str | None = None) -> str:
        args = [f"iptables-{backend or self.backend}-save"]
        if table is not None:
            if table not in TABLES:
                raise ValueError(f"table {table!r}")
            args += ["-t", table]
        return self._run(args).stdout.decode()

    def ensure_rule(self, table: str, chain: str, spec) -> bool:
        """Insert `spec` at the top of a built-in chain unless it is there; True when inserted."""
        spec = _check_spec(table, chain, spec)
        binary = f"iptables-{self.backend}"
        if self._run([binary, "-w", "5", "-t", table, "-C", chain] + spec, ok=(0, 1)).returncode == 0:
            return False
        self._run([binary, "-w", "5", "-t", table, "-I", chain, "1"] + spec)
        return True

    def saves_of_both(self) -> dict[str, str]:
        """Every table of both backends (for mismatch_warning); a backend that cannot be read
        counts as empty."""
        out = {}
        for b in BACKENDS:
            try:
                out[b] = self.save(backend=b)
            except (IptablesError, OSError, subprocess.TimeoutExpired) as err:
                log.debug("iptables-%s-save: %s", b, err)
                out[b] = ""
        return out
