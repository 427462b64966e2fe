"""The network configuration of a `nodeagent` plugin, parsed and validated before any change.

    {"cniVersion": "1.0.0", "name": "nodeagent", "type": "nodeagent",
     "bridge": "cni0",                 # default cni0
     "mtu": 1450,                      # default: the subnet file's MTU, else the kernel's 1500
     "hairpinMode": true,              # default true: a pod reaches itself through a service VIP
     "isDefaultGateway": true,         # default true: default route via the gateway
     "forceAddress": false,            # replace another IPv4 address found on the bridge
     "ipam": {                         # built in; host-local's keys and on-disk layout
        "subnet": "10.244.1.0/24", "rangeStart": ..., "rangeEnd": ..., "gateway": ...,
        # or "ranges": [[{"subnet": ..., "rangeStart": ..., "rangeEnd": ..., "gateway": ...}]]
        # or "subnetFile": "/run/nodeagent/subnet.env"  (the node agent writes it)
        "reserved": ["10.244.1.2"],    # never handed out (besides network, broadcast, gateway)
        "routes": [{"dst": "10.96.0.0/12"}],   # extra routes in the pod (gw: the gateway)
        "dataDir": "/var/lib/cni/networks"},
     "dns": {"nameservers": [...], "search": [...]}}

The subnet file is flannel's subnet.env format; NODEAGENT_* keys win over FLANNEL_* ones:
    NODEAGENT_SUBNET=10.244.1.1/24     the node's pod subnet; host bits name the gateway
    NODEAGENT_MTU=1450
"""
from __future__ import annotations

from .ipam import Range, parse_cidr, parse_ip, ip_str, netmask, cidr_str
from .spec import (CniError, E_INVALID_CONFIG, E_TRY_AGAIN, E_UNSUPPORTED_FIELD,
                   interface_name_problem, valid_name)

DEFAULT_BRIDGE = "cni0"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"
DEFAULT_SUBNET_FILE = "/run/nodeagent/subnet.env"


def _bad(msg: str, details: str = "") -> CniError:
    return CniError(E_INVALID_CONFIG, msg, details)


def read_subnet_file(path: str) -> dict[str, str]:
    """KEY=VALUE lines (flannel's subnet.env). A missing file is "try again later": the node
    agent writes it once the node has a pod subnet."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise CniError(E_TRY_AGAIN, f"node subnet file {path} does not exist yet",
                       "the node agent writes it once the node has a pod CIDR; start the node "
                       "agent, or set ipam.subnet in the network configuration") from None
    except OSError as e:
        raise _bad(f"cannot read node subnet file {path}", e.strerror) from None
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip().strip('"')
    return out


def _subnet_from_file(path: str) -> tuple[dict, int | None]:
    values = read_subnet_file(path)
    subnet = values.get("NODEAGENT_SUBNET") or values.get("FLANNEL_SUBNET")
    if not subnet:
        raise CniError(E_TRY_AGAIN, f"node subnet file {path} has no NODEAGENT_SUBNET",
                       "expected a line like NODEAGENT_SUBNET=10.244.1.1/24")
    try:
        ip, prefix = parse_cidr(subnet)
    except ValueError as e:
        raise _bad(f"bad NODEAGENT_SUBNET in {path}", str(e)) from None
    net = ip & netmask(prefix)
    rng = {"subnet": cidr_str(net, prefix)}
    if ip != net:
        rng["gateway"] = ip_str(ip)  # flannel writes the gateway address with the prefix
    mtu = values.get("NODEAGENT_MTU") or values.get("FLANNEL_MTU")
    if mtu is not None and not mtu.isdigit():
        raise _bad(f"bad NODEAGENT_MTU in {path}", f"{mtu!r} is not a number")
    return rng, int(mtu) if mtu else None


def _typed(conf: dict, key: str, kind, default, what: str = ""):
    v = conf.get(key, default)
    if v is None:
        return default
    if kind is int and isinstance(v, bool) or not isinstance(v, kind):
        name = {bool: "true or false", int: "a number", str: "a string", list: "a list",
                dict: "an object"}.get(kind, kind.__name__)
        raise _bad(f"{what or key} must be {name}", f"got {v!r}")
    return v


class NetConf:
    """One plugin configuration (the JSON on stdin), validated."""

    def __init__(self, raw: dict, cni_args: dict[str, str] | None = None, need_ranges: bool = True):
        self.raw = raw
        self.name = raw["name"]
        self.cni_version = raw.get("cniVersion") or "0.1.0"
        self.bridge = _typed(raw, "bridge", str, DEFAULT_BRIDGE)
        problem = interface_name_problem(self.bridge)
        if problem:
            raise _bad(f"invalid bridge name {self.bridge!r}", problem)
        self.mtu = _typed(raw, "mtu", int, 0)
        if self.mtu and not 68 <= self.mtu <= 65535:
            raise _bad(f"invalid mtu {self.mtu}", "an MTU is between 68 and 65535")
        self.hairpin = _typed(raw, "hairpinMode", bool, True)
        self.is_default_gw = _typed(raw, "isDefaultGateway", bool, True)
        self.force_address = _typed(raw, "forceAddress", bool, False)
        if _typed(raw, "ipMasq", bool, False):
            raise CniError(E_UNSUPPORTED_FIELD, "unsupported field ipMasq=true",
                           "the nodeagent plugin does not masquerade: the node agent's proxy does; "
                           "remove ipMasq or set it to false")
        if _typed(raw, "promiscMode", bool, False):
            raise CniError(E_UNSUPPORTED_FIELD, "unsupported field promiscMode=true",
                           "use hairpinMode (the default) instead")
        self.dns = _typed(raw, "dns", dict, {})
        self.prev_result = raw.get("prevResult")
        runtime = _typed(raw, "runtimeConfig", dict, {})
        ipam = _typed(raw, "ipam", dict, {})
        if ipam.get("type") not in (None, "", "nodeagent", "host-local"):
            raise _bad(f"ipam.type {ipam.get('type')!r} is not supported",
                       "the nodeagent plugin has host-local compatible IPAM built in and "
                       "delegates to no IPAM plugin: remove ipam.type or set it to \"nodeagent\"")
        self.data_dir = _typed(ipam, "dataDir", str, DEFAULT_DATA_DIR, "ipam.dataDir")
        self.subnet_file = _typed(ipam, "subnetFile", str, "", "ipam.subnetFile")
        self.ipam = ipam
        self.ranges: list[Range] = []
        self.routes: list[dict] = []
        self._file_mtu = None
        if need_ranges:
            self.load_ranges()
        # requested address and MAC: runtimeConfig (capabilities "ips", "mac"), then args.cni,
        # then CNI_ARGS (IP=, MAC=), as the reference plugins read them
        cni_args = cni_args or {}
        args_cni = _typed(_typed(raw, "args", dict, {}), "cni", dict, {}, "args.cni")
        ips = runtime.get("ips") or args_cni.get("ips") or ([cni_args["IP"]] if cni_args.get("IP") else [])
        if not isinstance(ips, list) or len(ips) > 1:
            raise _bad("at most one requested IP is supported", f"got {ips!r}")
        self.requested_ip = None
        if ips:
            try:
                self.requested_ip = parse_ip(str(ips[0]).split("/")[0])
            except ValueError as e:
                raise _bad("bad requested IP", str(e)) from None
        self.mac = runtime.get("mac") or args_cni.get("mac") or cni_args.get("MAC") or ""
        if self.mac:
            from .netlink import mac_bytes
            try:
                mac_bytes(self.mac)
            except ValueError as e:
                raise _bad("bad requested MAC", str(e)) from None

    def load_ranges(self):
        ipam = self.ipam
        has_inline = "subnet" in ipam or "ranges" in ipam
        if has_inline and self.subnet_file:
            raise _bad("ipam has both a subnet and a subnetFile", "keep one of them")
        if self.subnet_file:
            rng, self._file_mtu = _subnet_from_file(self.subnet_file)
            rangesets = [[rng]]
        elif "ranges" in ipam:
            rangesets = _typed(ipam, "ranges", list, [], "ipam.ranges")
            if len(rangesets) != 1 or not isinstance(rangesets[0], list) or not rangesets[0]:
                raise _bad("ipam.ranges must hold exactly one range set (a non-empty list of ranges)",
                           "this plugin allocates one IPv4 address per attachment")
        elif "subnet" in ipam:
            rangesets = [[{k: ipam[k] for k in ("subnet", "rangeStart", "rangeEnd", "gateway") if k in ipam}]]
        else:
            raise _bad("ipam has no subnet",
                       "set ipam.subnet, ipam.ranges or ipam.subnetFile (e.g. \"/run/nodeagent/subnet.env\")")
        reserved = []
        for r in _typed(ipam, "reserved", list, [], "ipam.reserved"):
            try:
                reserved.append(parse_ip(r))
            except ValueError as e:
                raise _bad("bad address in ipam.reserved", str(e)) from None
        self.ranges = []
        for spec in rangesets[0]:
            if not isinstance(spec, dict) or "subnet" not in spec:
                raise _bad("every range needs a subnet", f"got {spec!r}")
            try:
                r = Range(spec["subnet"], spec.get("rangeStart"), spec.get("rangeEnd"),
                          spec.get("gateway"), reserved)
            except ValueError as e:
                raise _bad("invalid IPAM range", str(e)) from None
            for other in self.ranges:
                if r.start <= other.end and other.start <= r.end:
                    raise _bad("IPAM ranges overlap", f"{r!r} and {other!r}")
            self.ranges.append(r)
        for route in _typed(ipam, "routes", list, [], "ipam.routes"):
            if not isinstance(route, dict):
                raise _bad("bad route in ipam.routes", f"got {route!r}")
            try:
                ip, prefix = parse_cidr(route.get("dst"))
                if ip & ~netmask(prefix) & 0xFFFFFFFF:
                    raise ValueError(f"{route['dst']} has host bits set")
                if route.get("gw"):
                    parse_ip(route["gw"])
            except ValueError as e:
                raise _bad("bad route in ipam.routes", str(e)) from None
            if prefix == 0 and self.is_default_gw:
                continue  # the default route is already there (isDefaultGateway)
            self.routes.append(dict(route))

    @property
    def effective_mtu(self) -> int:
        """The MTU to set (0: leave the kernel's default)."""
        return self.mtu or self._file_mtu or 0


def check_name(raw) -> str:
    name = raw.get("name")
    if not name:
        raise _bad("missing network name", "set \"name\" in the network configuration")
    if not isinstance(name, str) or not valid_name(name):
        raise _bad(f"invalid network name {name!r}",
                   "a network name is [a-zA-Z0-9][a-zA-Z0-9_.-]* (it names a directory)")
    return name
