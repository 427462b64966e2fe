"""IPv4 address management, compatible with the reference host-local plugin's on-disk layout.

    <dataDir>/<network>/<ip>                  one file per allocated address, holding
                                              "<container id>\\r\\n<ifname>"
    <dataDir>/<network>/last_reserved_ip.0    the round-robin pointer of range set 0
    <dataDir>/<network>/lock                  flock()ed around every change

Reservation is atomic (the address file is created with O_EXCL) and every allocation or
release runs under the flock, so concurrent plugin processes never hand out one address twice.
The allocator walks the ranges from the address after the last one reserved (round robin, so a
just-released address is not reused at once), skipping the gateway and the reserved addresses.
A `Store` is the small interface of host-local's backend; `MemoryStore` is its fake for tests.

Addresses are ints here: the `ipaddress` module costs ~7 ms to import on every pod start.
"""
from __future__ import annotations

import os

from _socket import AF_INET, inet_ntop, inet_pton

from .spec import (CniError, E_ADDRESS_UNAVAILABLE, E_POOL_EXHAUSTED, E_STORE,
                   E_TRY_AGAIN)

LAST_RESERVED_PREFIX = "last_reserved_ip."
LINE_BREAK = "\r\n"
LOCK_TIMEOUT = 10.0  # seconds; a longer wait becomes "try again later" (code 11)


# -- IPv4 helpers --------------------------------------------------------------------------------
def parse_ip(s) -> int:
    if not isinstance(s, str):
        raise ValueError(f"not an IPv4 address: {s!r}")
    try:
        return int.from_bytes(inet_pton(AF_INET, s), "big")
    except OSError:
        if ":" in s:
            raise ValueError(f"{s!r} is IPv6: only IPv4 is supported") from None
        raise ValueError(f"not an IPv4 address: {s!r}") from None


def ip_str(ip: int) -> str:
    return inet_ntop(AF_INET, ip.to_bytes(4, "big"))


def parse_cidr(s) -> tuple[int, int]:
    """'10.0.0.5/24' -> (address, prefix length); host bits are kept."""
    if not isinstance(s, str) or "/" not in s:
        raise ValueError(f"not an IPv4 CIDR (a.b.c.d/n): {s!r}")
    a, _, p = s.partition("/")
    if ":" in a:
        raise ValueError(f"{s!r} is IPv6: only IPv4 is supported")
    if not p.isdigit() or not 0 <= int(p) <= 32:
        raise ValueError(f"bad prefix length in {s!r}")
    return parse_ip(a), int(p)


def netmask(prefix: int) -> int:
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF


def cidr_str(ip: int, prefix: int) -> str:
    return f"{ip_str(ip)}/{prefix}"


class Range:
    """One host-local range: subnet, first and last address handed out, gateway."""

    def __init__(self, subnet: str, range_start=None, range_end=None, gateway=None, reserved=()):
        net, self.prefix = parse_cidr(subnet)
        if self.prefix > 30:
            raise ValueError(f"network {subnet} too small to allocate from (at most /30)")
        if net & ~netmask(self.prefix) & 0xFFFFFFFF:
            raise ValueError(f"network {subnet} has host bits set; the network address is "
                             f"{cidr_str(net & netmask(self.prefix), self.prefix)}")
        self.network = net
        self.broadcast = net | (~netmask(self.prefix) & 0xFFFFFFFF)
        self.gateway = parse_ip(gateway) if gateway else net + 1
        self.start = parse_ip(range_start) if range_start else net + 1
        self.end = parse_ip(range_end) if range_end else self.broadcast - 1
        for what, ip in (("gateway", self.gateway), ("rangeStart", self.start), ("rangeEnd", self.end)):
            if not self.network < ip < self.broadcast:
                raise ValueError(f"{what} {ip_str(ip)} is not a usable address of {subnet}")
        if self.start > self.end:
            raise ValueError(f"rangeStart {ip_str(self.start)} is after rangeEnd {ip_str(self.end)}")
        self.reserved = frozenset(reserved) | {self.gateway}
        self.subnet = cidr_str(net, self.prefix)

    def contains(self, ip: int) -> bool:
        return self.start <= ip <= self.end

    def usable(self, ip: int) -> bool:
        return self.contains(ip) and ip not in self.reserved

    def size(self) -> int:
        return (self.end - self.start + 1) - sum(1 for r in self.reserved if self.contains(r))

    def __repr__(self):
        return f"{ip_str(self.start)}-{ip_str(self.end)}"


# -- stores --------------------------------------------------------------------------------------
class DiskStore:
    """host-local's disk backend: <data_dir>/<network>/, a file per address, a flock."""

    def __init__(self, data_dir: str, network: str):
        self.dir = os.path.join(data_dir, network)
        self._lock_fd = -1

    def _ensure_dir(self):
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
        except OSError as e:
            raise CniError(E_STORE, f"cannot create IPAM directory {self.dir}",
                           f"{e.strerror}; check ipam.dataDir and that the plugin runs as root") from None

    def __enter__(self):
        import fcntl
        import time
        self._ensure_dir()
        try:
            fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise CniError(E_STORE, f"cannot open lock file in {self.dir}", e.strerror) from None
        deadline = time.monotonic() + LOCK_TIMEOUT
        delay = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise CniError(E_TRY_AGAIN, f"IPAM store {self.dir} is locked",
                                   f"another process held {self.dir}/lock for over "
                                   f"{LOCK_TIMEOUT:.0f} s; retry") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
        self._lock_fd = fd
        return self

    def __exit__(self, *exc):
        os.close(self._lock_fd)  # closing the descriptor releases the flock
        self._lock_fd = -1

    def reserve(self, cid: str, ifname: str, ip: int, range_id: str) -> bool:
        path = os.path.join(self.dir, ip_str(ip))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            return False
        except OSError as e:
            raise CniError(E_STORE, f"cannot create {path}", e.strerror) from None
        try:
            os.write(fd, (cid.strip() + LINE_BREAK + ifname).encode())
        except OSError as e:
            os.close(fd)
            os.unlink(path)
            raise CniError(E_STORE, f"cannot write {path}", e.strerror) from None
        os.close(fd)
        try:
            with open(os.path.join(self.dir, LAST_RESERVED_PREFIX + range_id), "w") as f:
                f.write(ip_str(ip))
        except OSError as e:
            os.unlink(path)
            raise CniError(E_STORE, f"cannot write the last reserved address in {self.dir}",
                           e.strerror) from None
        return True

    def last_reserved(self, range_id: str) -> int | None:
        try:
            with open(os.path.join(self.dir, LAST_RESERVED_PREFIX + range_id)) as f:
                return parse_ip(f.read().strip())
        except (OSError, ValueError):
            return None

    def owner(self, ip: int) -> tuple[str, str] | None:
        """(container id, ifname) of an allocated address; ifname "" in the old format."""
        try:
            with open(os.path.join(self.dir, ip_str(ip)), newline="") as f:  # keep the \r\n
                data = f.read()
        except OSError:
            return None
        cid, _, ifname = data.strip().partition(LINE_BREAK)
        return cid.strip(), ifname.strip()

    def entries(self) -> dict[int, tuple[str, str]]:
        """Every allocation: address -> (container id, ifname)."""
        out = {}
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return out
        for name in names:
            if name == "lock" or name.startswith(LAST_RESERVED_PREFIX):
                continue
            try:
                ip = parse_ip(name)
            except ValueError:
                continue
            owner = self.owner(ip)
            if owner is not None:
                out[ip] = owner
        return out

    def release(self, ip: int):
        try:
            os.unlink(os.path.join(self.dir, ip_str(ip)))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise CniError(E_STORE, f"cannot remove {os.path.join(self.dir, ip_str(ip))}",
                           e.strerror) from None


class MemoryStore:
    """The same interface in memory (tests and the fake tier)."""

    def __init__(self):
        self.files: dict[int, tuple[str, str]] = {}
        self.last: dict[str, int] = {}
        self.locked = 0

    def __enter__(self):
        self.locked += 1
        return self

    def __exit__(self, *exc):
        self.locked -= 1

    def reserve(self, cid, ifname, ip, range_id):
        assert self.locked, "reserve outside the lock"
        if ip in self.files:
            return False
        self.files[ip] = (cid.strip(), ifname)
        self.last[range_id] = ip
        return True

    def last_reserved(self, range_id):
        return self.last.get(range_id)

    def owner(self, ip):
        return self.files.get(ip)

    def entries(self):
        return dict(self.files)

    def release(self, ip):
        assert self.locked, "release outside the lock"
        self.files.pop(ip, None)


# -- allocator -----------------------------------------------------------------------------------
def _matches(owner, cid: str, ifname: str) -> bool:
    # host-local's old format held only the container id; such a file matches any ifname.
    return owner[0] == cid and owner[1] in (ifname, "")


class Allocator:
    """Allocation over one range set (a list of IPv4 ranges) in a store."""

    RANGE_ID = "0"  # host-local numbers its range sets; this plugin has exactly one

    def __init__(self, ranges: list[Range], store):
        self.ranges, self.store = ranges, store

    def range_for(self, ip: int) -> Range | None:
        return next((r for r in self.ranges if r.contains(ip)), None)

    def _iter_candidates(self):
        """Every usable address once, starting after the last reserved one (round robin);
        lazily, so that a /16 does not build a list of 65k addresses."""
        usable = self.ranges
        last = self.store.last_reserved(self.RANGE_ID)
        pos = None
        if last is not None:
            for i, r in enumerate(usable):
                if r.contains(last):
                    pos = (i, last + 1)
                    break
        if pos is None:
            pos = (0, usable[0].start)
        idx, ip = pos
        seen = 0
        total = sum(r.end - r.start + 1 for r in usable)
        while seen < total:
            r = usable[idx]
            if ip > r.end:
                idx = (idx + 1) % len(usable)
                ip = usable[idx].start
                continue
            seen += 1
            if ip not in r.reserved:
                yield r, ip
            ip += 1

    def allocate(self, cid: str, ifname: str, requested: int | None = None) -> tuple[Range, int]:
        with self.store:
            if requested is not None:
                r = self.range_for(requested)
                if r is None:
                    raise CniError(E_ADDRESS_UNAVAILABLE, f"requested address {ip_str(requested)} is not in the range set",
                                   f"ranges: {', '.join(map(repr, self.ranges))}")
                if requested in r.reserved:
                    raise CniError(E_ADDRESS_UNAVAILABLE, f"requested address {ip_str(requested)} is reserved",
                                   "the gateway and reserved addresses are never handed out")
                if not self.store.reserve(cid, ifname, requested, self.RANGE_ID):
                    owner = self.store.owner(requested)
                    raise CniError(E_ADDRESS_UNAVAILABLE, f"requested address {ip_str(requested)} is in use",
                                   f"allocated to container {owner[0] if owner else '?'}")
                return r, requested
            for r, ip in self._iter_candidates():
                if self.store.reserve(cid, ifname, ip, self.RANGE_ID):
                    return r, ip
        total = sum(r.size() for r in self.ranges)
        raise CniError(E_POOL_EXHAUSTED, "no IP addresses available in range set "
                       + ", ".join(map(repr, self.ranges)),
                       f"all {total} usable addresses are allocated; delete unused pods, run "
                       f"GC, or widen the range (ipam.ranges / the node subnet)")

    def find(self, cid: str, ifname: str) -> list[int]:
        return sorted(ip for ip, owner in self.store.entries().items() if _matches(owner, cid, ifname))

    def release(self, cid: str, ifname: str, hint: list[int] = ()) -> list[int]:
        """Release the addresses of one attachment. `hint` (from a cached prevResult) lets us
        check those files first instead of reading every file of the network."""
        with self.store:
            hinted = [ip for ip in hint if (o := self.store.owner(ip)) and _matches(o, cid, ifname)]
            if hinted:
                for ip in hinted:
                    self.store.release(ip)
                # an attachment has one address per range set; nothing else can be left
                return hinted
            found = [ip for ip, owner in self.store.entries().items() if _matches(owner, cid, ifname)]
            for ip in found:
                self.store.release(ip)
            return sorted(found)

    def gc(self, valid: set[tuple[str, str]]) -> list[int]:
        """Release every address whose attachment is not in `valid` ((container id, ifname))."""
        valid_ids = {cid for cid, _ in valid}
        with self.store:
            stale = []
            for ip, (cid, ifname) in self.store.entries().items():
                keep = (cid, ifname) in valid if ifname else cid in valid_ids
                if not keep:
                    stale.append(ip)
            for ip in stale:
                self.store.release(ip)
        return sorted(stale)

    def free_count(self) -> int:
        used = set(self.store.entries())
        return sum(1 for r in self.ranges for ip in range(r.start, r.end + 1)
                   if ip not in r.reserved and ip not in used)
