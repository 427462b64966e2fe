"""The CNI specification's data: versions, error codes, the CNI_* environment, results.

Pure functions only (no kernel, no files), standard library C modules only, so the plugin
executable can import this on every call for free. Results are held internally in the 1.1.0
shape (plain dicts) and rendered per requested version:

- 1.1.0: interfaces may carry `mtu`, `socketPath`, `pciID`; routes may carry `mtu`, `advmss`,
  `priority`, `table`, `scope`.
- 1.0.0: interfaces `name`, `mac`, `sandbox`; ips `address`, `gateway`, `interface`; routes `dst`,
  `gw` (the 1.0.0 spec knows no more).
- 0.3.0, 0.3.1, 0.4.0: as 1.0.0, and every entry of `ips` has `"version": "4"` or `"6"`.
- 0.1.0, 0.2.0: no interfaces; `ip4` / `ip6` objects holding `ip`, `gateway` and `routes`.
"""
from __future__ import annotations

SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"

# Error codes: 0-99 are the specification's, 100 and up are this plugin's own.
E_INCOMPATIBLE_VERSION = 1
E_UNSUPPORTED_FIELD = 2
E_UNKNOWN_CONTAINER = 3
E_INVALID_ENV = 4
E_IO = 5
E_DECODE = 6
E_INVALID_CONFIG = 7
E_TRY_AGAIN = 11
E_NOT_AVAILABLE = 50
E_POOL_EXHAUSTED = 100
E_ADDRESS_UNAVAILABLE = 101
E_INTERFACE_EXISTS = 102
E_BRIDGE = 103
E_KERNEL = 104
E_STORE = 105
E_CHECK_FAILED = 106
E_INJECTED = 107
E_ROUTE_EXISTS = 108
E_INTERNAL = 999

ERROR_NAMES = {
    E_INCOMPATIBLE_VERSION: "incompatible CNI version",
    E_UNSUPPORTED_FIELD: "unsupported field in network configuration",
    E_UNKNOWN_CONTAINER: "container unknown or does not exist",
    E_INVALID_ENV: "invalid environment variables",
    E_IO: "I/O failure",
    E_DECODE: "failed to decode content",
    E_INVALID_CONFIG: "invalid network configuration",
    E_TRY_AGAIN: "try again later",
    E_NOT_AVAILABLE: "plugin not available",
    E_POOL_EXHAUSTED: "address pool exhausted",
    E_ADDRESS_UNAVAILABLE: "requested address unavailable",
    E_INTERFACE_EXISTS: "interface already exists",
    E_BRIDGE: "bridge cannot be used",
    E_KERNEL: "kernel operation failed",
    E_STORE: "IPAM store failure",
    E_CHECK_FAILED: "attachment does not match its ADD result",
    E_INJECTED: "injected failure (test hook)",
    E_ROUTE_EXISTS: "route already exists in the container",
    E_INTERNAL: "internal error",
}


class CniError(Exception):
    """An error to report to the runtime as the spec's error object."""

    def __init__(self, code: int, msg: str, details: str = ""):
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details

    def to_dict(self, cni_version: str) -> dict:
        d = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            d["details"] = self.details
        return d

    def __str__(self):
        return f"{self.msg}: {self.details}" if self.details else self.msg


# -- versions ------------------------------------------------------------------------------------
def parse_version(v) -> tuple[int, int, int]:
    """'1.0.0' -> (1, 0, 0); a bad string is a decode error (code 6), like libcni's."""
    if not isinstance(v, str):
        raise CniError(E_DECODE, "cniVersion must be a string", f"got {v!r}")
    parts = v.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise CniError(E_DECODE, f"cannot parse cniVersion {v!r}",
                       "a version is three dot-separated numbers, e.g. \"1.0.0\"")
    return int(parts[0]), int(parts[1]), int(parts[2])


def check_version(v: str) -> str:
    parse_version(v)
    if v not in SUPPORTED_VERSIONS:
        raise CniError(E_INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {v!r}, plugin supports {list(SUPPORTED_VERSIONS)}; "
                       f"set cniVersion in the network configuration to one of them")
    return v


def at_least(v: str, minimum: str) -> bool:
    return parse_version(v) >= parse_version(minimum)


# -- environment ---------------------------------------------------------------------------------
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
# Variables each command needs (CNI_PATH is not needed: this plugin delegates to nothing).
REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "VERSION": (), "STATUS": (), "GC": (),
}
_NAME_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_REST = _NAME_FIRST | frozenset("_.-")


def valid_name(s: str) -> bool:
    """The spec's rule for container ids and network names: [a-zA-Z0-9][a-zA-Z0-9_.-]*."""
    return bool(s) and s[0] in _NAME_FIRST and all(c in _NAME_REST for c in s[1:])


def interface_name_problem(name: str) -> str | None:
    """Why `name` cannot be a Linux interface name, or None (the kernel's dev_valid_name)."""
    if not name:
        return "it is empty"
    if len(name.encode()) > 15:
        return "it is longer than 15 bytes"
    if name in (".", ".."):
        return "it is . or .."
    if any(c in "/:" or c.isspace() for c in name):
        return "it contains / or : or whitespace"
    return None


def read_env(env) -> dict:
    """The CNI_* parameters, validated: code 4 names each missing or invalid variable."""
    cmd = env.get("CNI_COMMAND", "")
    if not cmd:
        raise CniError(E_INVALID_ENV, "required env variables [CNI_COMMAND] missing",
                       f"set CNI_COMMAND to one of {', '.join(COMMANDS)}")
    if cmd not in COMMANDS:
        raise CniError(E_INVALID_ENV, f"unknown CNI_COMMAND {cmd!r}",
                       f"set CNI_COMMAND to one of {', '.join(COMMANDS)}")
    missing = [k for k in REQUIRED_ENV[cmd] if not env.get(k)]
    if missing:
        raise CniError(E_INVALID_ENV, f"required env variables [{','.join(missing)}] missing",
                       f"CNI_COMMAND={cmd} needs {', '.join(REQUIRED_ENV[cmd])}")
    args = {"command": cmd, "container_id": env.get("CNI_CONTAINERID", ""),
            "netns": env.get("CNI_NETNS", ""), "ifname": env.get("CNI_IFNAME", ""),
            "args": env.get("CNI_ARGS", ""), "path": env.get("CNI_PATH", "")}
    if "CNI_CONTAINERID" in REQUIRED_ENV[cmd] and not valid_name(args["container_id"]):
        raise CniError(E_INVALID_ENV, "invalid characters in CNI_CONTAINERID",
                       f"{args['container_id']!r}: a container id is [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    if "CNI_IFNAME" in REQUIRED_ENV[cmd]:
        problem = interface_name_problem(args["ifname"])
        if problem:
            raise CniError(E_INVALID_ENV, f"invalid CNI_IFNAME {args['ifname']!r}", problem)
    return args


def parse_cni_args(s: str) -> dict[str, str]:
    """CNI_ARGS "K=V;K2=V2" -> dict. Keys this plugin does not know are ignored."""
    out = {}
    for part in s.split(";"):
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep or not k:
            raise CniError(E_INVALID_ENV, f"invalid CNI_ARGS pair {part!r}",
                           "CNI_ARGS is a list of KEY=VALUE pairs separated by ';'")
        out[k] = v
    return out


# -- results -------------------------------------------------------------------------------------
_IFACE_KEYS_11 = ("name", "mac", "mtu", "sandbox", "socketPath", "pciID")
_IFACE_KEYS_10 = ("name", "mac", "sandbox")
_ROUTE_KEYS_11 = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
_ROUTE_KEYS_10 = ("dst", "gw")


def _is_v6(cidr: str) -> bool:
    return ":" in cidr


def _obj(v, what: str) -> dict:
    if not isinstance(v, dict):
        raise CniError(E_DECODE, f"cannot decode {what}", f"expected a JSON object, got {v!r}")
    return v


def _list(v, what: str) -> list:
    if v is None:
        return []
    if not isinstance(v, list):
        raise CniError(E_DECODE, f"cannot decode {what}", f"expected a JSON list, got {v!r}")
    return v


def parse_result(obj, version: str) -> dict:
    """A result (e.g. prevResult) of any supported version -> the internal 1.1.0 shape."""
    obj = _obj(obj, "prevResult")
    version = obj.get("cniVersion") or version
    out = {"interfaces": [], "ips": [], "routes": [], "dns": dict(_obj(obj.get("dns") or {}, "dns"))}
    if version in ("0.1.0", "0.2.0"):
        for key in ("ip4", "ip6"):
            if obj.get(key):
                ipc = _obj(obj[key], key)
                if not isinstance(ipc.get("ip"), str):
                    raise CniError(E_DECODE, f"cannot decode prevResult.{key}", "missing ip")
                ip = {"address": ipc["ip"]}
                if ipc.get("gateway"):
                    ip["gateway"] = ipc["gateway"]
                out["ips"].append(ip)
                out["routes"] += [dict(_obj(r, "route")) for r in _list(ipc.get("routes"), "routes")]
        return out
    for i in _list(obj.get("interfaces"), "prevResult.interfaces"):
        i = _obj(i, "interface")
        if not isinstance(i.get("name"), str):
            raise CniError(E_DECODE, "cannot decode prevResult.interfaces", "an interface has no name")
        out["interfaces"].append({k: i[k] for k in _IFACE_KEYS_11 if i.get(k) not in (None, "")})
    for ip in _list(obj.get("ips"), "prevResult.ips"):
        ip = _obj(ip, "ip")
        if not isinstance(ip.get("address"), str):
            raise CniError(E_DECODE, "cannot decode prevResult.ips", "an entry has no address")
        out["ips"].append({k: ip[k] for k in ("address", "gateway", "interface") if k in ip and ip[k] is not None})
    for r in _list(obj.get("routes"), "prevResult.routes"):
        r = _obj(r, "route")
        if not isinstance(r.get("dst"), str):
            raise CniError(E_DECODE, "cannot decode prevResult.routes", "a route has no dst")
        out["routes"].append({k: r[k] for k in _ROUTE_KEYS_11 if k in r and r[k] is not None})
    return out


def render_result(res: dict, version: str) -> dict:
    """The internal result -> the JSON object of the requested spec version."""
    if version in ("0.1.0", "0.2.0"):
        out: dict = {"cniVersion": version}
        for fam, key in ((False, "ip4"), (True, "ip6")):
            ip = next((i for i in res["ips"] if _is_v6(i["address"]) == fam), None)
            if ip is None:
                continue
            entry = {"ip": ip["address"]}
            if ip.get("gateway"):
                entry["gateway"] = ip["gateway"]
            routes = [{k: r[k] for k in _ROUTE_KEYS_10 if k in r} for r in res["routes"]
                      if _is_v6(r["dst"]) == fam]
            if routes:
                entry["routes"] = routes
            out[key] = entry
        out["dns"] = dict(res.get("dns") or {})
        return out
    new = version == "1.1.0"
    iface_keys = _IFACE_KEYS_11 if new else _IFACE_KEYS_10
    route_keys = _ROUTE_KEYS_11 if new else _ROUTE_KEYS_10
    out = {"cniVersion": version}
    if res["interfaces"]:
        out["interfaces"] = [{k: i[k] for k in iface_keys if k in i} for i in res["interfaces"]]
    if res["ips"]:
        ips = []
        for ip in res["ips"]:
            e = {}
            if not at_least(version, "1.0.0"):
                e["version"] = "6" if _is_v6(ip["address"]) else "4"
            if "interface" in ip:
                e["interface"] = ip["interface"]
            e["address"] = ip["address"]
            if ip.get("gateway"):
                e["gateway"] = ip["gateway"]
            ips.append(e)
        out["ips"] = ips
    if res["routes"]:
        out["routes"] = [{k: r[k] for k in route_keys if k in r} for r in res["routes"]]
    out["dns"] = dict(res.get("dns") or {})
    return out


def merge_results(prev: dict | None, ours: dict) -> dict:
    """Our result appended to a previous plugin's (spec: a plugin given prevResult passes it
    on with its own changes). Interface indexes of our ips are shifted past prev's."""
    if not prev:
        return ours
    shift = len(prev["interfaces"])
    ips = [dict(ip, interface=ip["interface"] + shift) if "interface" in ip else dict(ip)
           for ip in ours["ips"]]
    return {"interfaces": prev["interfaces"] + ours["interfaces"], "ips": prev["ips"] + ips,
            "routes": prev["routes"] + ours["routes"],
            "dns": ours["dns"] if ours.get("dns") else prev.get("dns", {})}


def version_result(cni_version: str) -> dict:
    return {"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}
