"""Remove the firewall chains libvirt adds for its networks and leaves behind after the last
one stops: the LIBVIRT_* chains and the rules in the built-in chains that jump to them, in
iptables and ip6tables (filter, nat, mangle). A table that holds nothing else afterwards is
deleted too, but only if it did not exist before libvirt's first network started (the file
`cluster.sh` wrote then, `nft list tables` output, is the argument).

Run by `vagrant/cluster.sh down` only when no libvirt network is running; touches nothing but
chains named LIBVIRT_* and the rules that jump to them."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys

TABLES = ("filter", "nat", "mangle")
OURS = re.compile(r"^LIBVIRT_[A-Z]+$")


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True)


def clean(tool: str, family: str, before: set[str]) -> list[str]:
    done = []
    for table in TABLES:
        listing = run([tool, "-w", "-t", table, "-S"])
        if listing.returncode != 0:
            continue
        lines = listing.stdout.splitlines()
        chains = [ln.split()[1] for ln in lines if ln.startswith("-N ") and OURS.match(ln.split()[1])]
        if not chains:
            continue
        for ln in lines:   # the jumps into them from other chains
            words = shlex.split(ln)
            if words[:1] == ["-A"] and not OURS.match(words[1]) and "-j" in words and OURS.match(words[words.index("-j") + 1]):
                run([tool, "-w", "-t", table, "-D", *words[1:]])
        for c in chains:
            run([tool, "-w", "-t", table, "-F", c])
        for c in chains:
            run([tool, "-w", "-t", table, "-X", c])
        done.append(f"{family} {table}: {' '.join(chains)}")
        rest = run([tool, "-w", "-t", table, "-S"]).stdout.splitlines()
        empty = all(ln.startswith("-P ") and ln.endswith(" ACCEPT") for ln in rest)
        if empty and f"table {family} {table}" not in before:
            run(["nft", "delete", "table", family, table])
    return done


def main() -> int:
    try:
        with open(sys.argv[1]) as f:
            before = {ln.strip() for ln in f}
    except (IndexError, OSError):
        before = None
    if before is None:
        # without the snapshot we cannot tell our tables from the host's: chains only
        before = {f"table {fam} {t}" for fam in ("ip", "ip6") for t in TABLES}
    done = clean("iptables", "ip", before) + clean("ip6tables", "ip6", before)
    for d in done:
        print(f"removed libvirt's chains: {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
