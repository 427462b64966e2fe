"""The CNI commands: ADD, DEL, CHECK, STATUS, GC, VERSION, shaped like the reference bridge plugin.

`run(env, stdin)` is the whole plugin as a function: the CNI_* environment and the stdin bytes in,
(exit code, stdout text) out. The executable (main.py), the optional resident daemon
(daemon.py) and the tests all call it; every failure becomes the spec's error JSON.

ADD, in order, each step undone (newest first) unless the whole ADD succeeds:
  1. config   validate everything, open CNI_NETNS           (nothing to undo)
  2. bridge   ensure the bridge exists and is up             (shared: never removed)
  3. veth     veth pair: host end on the bridge, hairpin on;  undo: delete it (the pod end,
              pod end CNI_IFNAME in CNI_NETNS                 its addresses and routes go too)
  4. ipam     reserve an address (file + flock)              undo: release it
  5. address  in the pod: lo up, address, link up, routes    undo: veth deletion; lo down again
  6. gateway  gateway address on the bridge, ip_forward      (shared: never removed)
  7. result   render the result (merged into prevResult)
Fault injection for tests: NODEAGENT_CNI_FAIL_AFTER=<step> makes ADD fail right after that step
(code 107), which must leave nothing behind.

DEL is best effort and idempotent: it deletes CNI_IFNAME in CNI_NETNS when both still exist, then
releases the address; a missing namespace or link is success.
"""
from __future__ import annotations

import os
import sys

from . import jsonio
from .config import NetConf, check_name
from .ipam import Allocator, DiskStore, cidr_str, ip_str, parse_cidr, parse_ip
from .spec import (CniError, E_CHECK_FAILED, E_DECODE, E_INCOMPATIBLE_VERSION, E_INJECTED,
                   E_INTERNAL, E_INVALID_CONFIG, E_INVALID_ENV, E_KERNEL, E_NOT_AVAILABLE,
                   E_UNKNOWN_CONTAINER, LATEST, at_least, check_version, merge_results,
                   parse_cni_args, parse_result, read_env, render_result, version_result)

ADD_STEPS = ("bridge", "veth", "ipam", "address", "gateway", "result")
FAIL_AFTER_ENV = "NODEAGENT_CNI_FAIL_AFTER"


def host_veth_name(container_id: str, ifname: str) -> str:
    """A deterministic host-side name: "veth" + 10 hex digits of a 64-bit FNV-1a hash of the
    attachment, so CHECK and humans can find a pod's veth. (hashlib costs ~4 ms to import.)"""
    h = 0xCBF29CE484222325
    for b in f"{container_id}/{ifname}".encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"veth{h >> 24:010x}"


class Context:
    """What one invocation works with; tests pass a fake kernel and store factory."""

    def __init__(self, env, kernel=None, store_factory=None, stderr=None):
        self.env = env
        self._kernel = kernel
        self.store_factory = store_factory or DiskStore
        self.stderr = stderr or sys.stderr

    @property
    def kernel(self):
        if self._kernel is None:
            from .kernel import RealKernel
            self._kernel = RealKernel()
        return self._kernel

    def log(self, msg: str):
        print(f"nodeagent-cni: {msg}", file=self.stderr)

    def allocator(self, conf: NetConf) -> Allocator:
        return Allocator(conf.ranges, self.store_factory(conf.data_dir, conf.name))


# -- entry point ---------------------------------------------------------------------------------
def run(env, stdin: bytes | str, kernel=None, store_factory=None, stderr=None) -> tuple[int, str]:
    """One plugin invocation. Returns (exit code, stdout)."""
    ctx = Context(env, kernel, store_factory, stderr)
    version = LATEST
    try:
        args = read_env(env)
        try:
            raw = jsonio.loads(stdin)
        except jsonio.JSONError as e:
            if args["command"] == "VERSION":
                raw = {}  # VERSION may come without input
            else:
                raise CniError(E_DECODE, "error decoding the network configuration on stdin",
                               f"{e}; the runtime must send one JSON object") from None
        if not isinstance(raw, dict):
            raise CniError(E_DECODE, "error decoding the network configuration on stdin",
                           f"expected a JSON object, got {type(raw).__name__}")
        cmd = args["command"]
        if cmd == "VERSION":
            v = raw.get("cniVersion")
            return 0, jsonio.dumps(version_result(v if isinstance(v, str) and v else LATEST))
        check_name(raw)
        requested = raw.get("cniVersion") or "0.1.0"
        check_version(requested)
        version = requested
        minimum = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}.get(cmd)
        if minimum and not at_least(version, minimum):
            raise CniError(E_INCOMPATIBLE_VERSION, f"config version {version} does not allow {cmd}",
                           f"{cmd} exists from CNI {minimum} on; raise cniVersion")
        conf = NetConf(raw, parse_cni_args(args["args"]), need_ranges=cmd in ("ADD", "CHECK"))
        out = COMMANDS[cmd](ctx, args, conf)
        return 0, jsonio.dumps(out) if out is not None else ""
    except CniError as e:
        return 1, jsonio.dumps(e.to_dict(version))
    except OSError as e:  # NetlinkError, setns, ...: the kernel said no
        hint = " (the plugin must run as root)" if e.errno == 1 else ""
        return 1, jsonio.dumps(CniError(E_KERNEL, f"{e}{hint}").to_dict(version))
    except Exception as e:  # a bug: say so, with the traceback on stderr
        import traceback
        traceback.print_exc(file=ctx.stderr)
        return 1, jsonio.dumps(CniError(E_INTERNAL, f"internal error: {type(e).__name__}: {e}",
                                        "please report this with the plugin's stderr").to_dict(version))
    finally:
        if ctx._kernel is not None and hasattr(ctx._kernel, "close"):
            ctx._kernel.close()


def _fail_after(ctx: Context) -> str:
    step = ctx.env.get(FAIL_AFTER_ENV, "")
    if step and step not in ADD_STEPS:
        raise CniError(E_INVALID_ENV, f"{FAIL_AFTER_ENV}={step!r} is not an ADD step",
                       f"use one of {', '.join(ADD_STEPS)}")
    return step


def _prev(conf: NetConf):
    if conf.prev_result is None:
        return None
    return parse_result(conf.prev_result, conf.cni_version)


def _routes_for(conf: NetConf, gateway: int) -> list[dict]:
    """The routes to add in the pod, as ints, and as they appear in the result."""
    routes = []
    if conf.is_default_gw:
        routes.append({"dst": 0, "dst_len": 0, "gw": gateway})
    for r in conf.routes:
        dst, dst_len = parse_cidr(r["dst"])
        k = {"dst": dst, "dst_len": dst_len, "gw": parse_ip(r["gw"]) if r.get("gw") else gateway}
        for key in ("mtu", "advmss", "priority", "table", "scope"):
            if isinstance(r.get(key), int) and not isinstance(r.get(key), bool):
                k[key] = r[key]
        routes.append(k)
    return routes


def _route_result(r: dict) -> dict:
    out = {"dst": cidr_str(r["dst"], r["dst_len"])}
    if r.get("gw") is not None:
        out["gw"] = ip_str(r["gw"])
    for key in ("mtu", "advmss", "priority", "table", "scope"):
        if key in r:
            out[key] = r[key]
    return out


# -- ADD -----------------------------------------------------------------------------------------
def cmd_add(ctx: Context, args: dict, conf: NetConf):
    fail_after = _fail_after(ctx)
    prev = _prev(conf)
    k = ctx.kernel
    netns_path, ifname, cid = args["netns"], args["ifname"], args["container_id"]
    try:
        if k.is_own_netns(netns_path):
            raise CniError(E_INVALID_ENV, "CNI_NETNS is the plugin's own network namespace",
                           f"{netns_path}: the runtime must pass the container's namespace")
        ns = k.open_netns(netns_path)
    except FileNotFoundError:
        raise CniError(E_UNKNOWN_CONTAINER, f"network namespace {netns_path} does not exist",
                       "the runtime must create the container's namespace before ADD") from None

    undo: list[tuple[str, object]] = []

    def step_done(step):
        if fail_after == step:
            raise CniError(E_INJECTED, f"injected failure after step {step!r}",
                           f"{FAIL_AFTER_ENV} is set: a test hook, unset it")

    ok = False
    try:
        mtu = conf.effective_mtu
        bridge = k.ensure_bridge(conf.bridge, mtu)
        step_done("bridge")

        host_name = host_veth_name(cid, ifname)
        host = k.create_veth(host_name, bridge, mtu, ns, ifname, conf.mac, conf.hairpin)
        undo.append(("delete veth " + host_name, lambda: k.delete_link(host_name)))
        step_done("veth")

        alloc = ctx.allocator(conf)
        rng, ip = alloc.allocate(cid, ifname, conf.requested_ip)
        undo.append((f"release {ip_str(ip)}", lambda: alloc.release(cid, ifname, [ip])))
        step_done("ipam")

        routes = _routes_for(conf, rng.gateway)
        pod = k.setup_pod(ns, ifname, ip, rng.prefix, routes)
        if pod.get("lo_was_down"):
            undo.append(("set lo down", lambda: k.set_pod_lo_down(ns)))
        step_done("address")

        k.ensure_gateway(bridge, rng.gateway, rng.prefix, conf.force_address)
        if conf.is_default_gw:
            k.enable_forwarding()
        step_done("gateway")

        bridge = k.link(conf.bridge) or bridge  # its MAC may change as ports join
        ifaces = [{"name": bridge["name"], "mac": bridge["mac"]},
                  {"name": host["name"], "mac": host["mac"]},
                  {"name": ifname, "mac": pod["mac"], "sandbox": netns_path}]
        if conf.cni_version == "1.1.0":  # 1.1.0 results may carry each interface's MTU
            for i, l in zip(ifaces, (bridge, host, pod)):
                if l.get("mtu"):
                    i["mtu"] = l["mtu"]
        ours = {"interfaces": ifaces,
                "ips": [{"address": cidr_str(ip, rng.prefix), "gateway": ip_str(rng.gateway), "interface": 2}],
                "routes": [_route_result(r) for r in routes],
                "dns": dict(conf.dns)}
        result = render_result(merge_results(prev, ours), conf.cni_version)
        step_done("result")
        ok = True
        return result
    finally:
        if not ok:
            for what, fn in reversed(undo):
                try:
                    fn()
                except Exception as e:  # keep undoing; the original error is what we report
                    ctx.log(f"rollback step {what!r} failed: {e}")
        k.close_netns(ns)


# -- DEL -----------------------------------------------------------------------------------------
def _hint_ips(conf: NetConf) -> list[int]:
    try:
        prev = _prev(conf)
    except CniError:
        return []  # DEL is best effort: a bad cached result must not block it
    out = []
    for ip in (prev or {}).get("ips", []):
        try:
            out.append(parse_cidr(ip["address"])[0])
        except ValueError:
            pass
    return out


def cmd_del(ctx: Context, args: dict, conf: NetConf):
    netns_path, ifname, cid = args["netns"], args["ifname"], args["container_id"]
    if netns_path:
        k = ctx.kernel
        try:
            own = k.is_own_netns(netns_path)
            ns = None if own else k.open_netns(netns_path)
        except FileNotFoundError:
            ns = None  # the namespace is gone, and the veth pair with it
        if ns is not None:
            try:
                k.delete_pod_link(ns, ifname)
            finally:
                k.close_netns(ns)
    ctx.allocator(conf).release(cid, ifname, _hint_ips(conf))
    return None


# -- CHECK ---------------------------------------------------------------------------------------
def _check_fail(msg, details=""):
    return CniError(E_CHECK_FAILED, msg, details)


def cmd_check(ctx: Context, args: dict, conf: NetConf):
    netns_path, ifname, cid = args["netns"], args["ifname"], args["container_id"]
    prev = _prev(conf)
    if prev is None:
        raise CniError(E_INVALID_CONFIG, "CHECK needs prevResult",
                       "the runtime must pass the result of ADD as prevResult")
    allocated = ctx.allocator(conf).find(cid, ifname)
    if not allocated:
        raise _check_fail(f"no address is reserved for container {cid} interface {ifname}",
                          f"nothing in {os.path.join(conf.data_dir, conf.name)}")
    ifaces = prev["interfaces"]
    pod_i = next((i for i, x in enumerate(ifaces) if x["name"] == ifname
                  and x.get("sandbox", netns_path) == netns_path), None)
    if pod_i is None:
        raise _check_fail(f"prevResult has no interface {ifname} in {netns_path}")
    want_ips = [parse_cidr(ip["address"]) for ip in prev["ips"] if ip.get("interface") == pod_i]
    k = ctx.kernel
    try:
        ns = k.open_netns(netns_path)
    except FileNotFoundError:
        raise _check_fail(f"network namespace {netns_path} does not exist") from None
    try:
        pod = k.inspect_pod(ns, ifname)
    finally:
        k.close_netns(ns)
    if pod is None:
        raise _check_fail(f"interface {ifname} is missing in {netns_path}")
    if pod["kind"] != "veth":
        raise _check_fail(f"interface {ifname} is a {pod['kind'] or 'device'}, not a veth")
    mac = ifaces[pod_i].get("mac")
    if mac and mac.lower() != pod["mac"]:
        raise _check_fail(f"interface {ifname} has MAC {pod['mac']}, ADD reported {mac}")
    for ip, prefix in want_ips:
        if (ip, prefix) not in pod["addresses"]:
            raise _check_fail(f"address {cidr_str(ip, prefix)} is missing on {ifname}")
        if ip not in allocated:
            raise _check_fail(f"address {ip_str(ip)} is not reserved for this container")
        rng = next((r for r in conf.ranges if r.contains(ip)), None)
        if rng is None:
            raise _check_fail(f"address {ip_str(ip)} is outside the configured ranges")
        for r in _routes_for(conf, rng.gateway):
            if not any(x["dst"] == r["dst"] and x["dst_len"] == r["dst_len"] and x["gw"] == r["gw"]
                       for x in pod["routes"]):
                raise _check_fail(f"route {_route_result(r)} is missing in {netns_path}")
    host_name = host_veth_name(cid, ifname)
    host = k.link(host_name)
    if host is None:
        raise _check_fail(f"host interface {host_name} is missing")
    bridge = k.link(conf.bridge)
    if bridge is None or bridge["kind"] != "bridge":
        raise _check_fail(f"bridge {conf.bridge} is missing")
    if host["master"] != bridge["index"]:
        raise _check_fail(f"host interface {host_name} is not on bridge {conf.bridge}")
    if host["peer_index"] != pod["index"] or pod["peer_index"] != host["index"]:
        raise _check_fail(f"host interface {host_name} is not the peer of {ifname}")
    if conf.hairpin and k.hairpin(host["index"]) is False:
        raise _check_fail(f"hairpin mode is off on {host_name}")
    return None


# -- STATUS and GC -------------------------------------------------------------------------------
def cmd_status(ctx: Context, args: dict, conf: NetConf):
    try:
        conf.load_ranges()
    except CniError as e:
        raise CniError(E_NOT_AVAILABLE, f"cannot serve ADD: {e.msg}", e.details) from None
    alloc = ctx.allocator(conf)
    try:
        with alloc.store:
            pass
    except CniError as e:
        raise CniError(E_NOT_AVAILABLE, f"cannot serve ADD: {e.msg}", e.details) from None
    if alloc.free_count() == 0:
        raise CniError(E_NOT_AVAILABLE, "cannot serve ADD: address pool exhausted",
                       "every address of " + ", ".join(map(repr, conf.ranges)) + " is allocated")
    return None


def cmd_gc(ctx: Context, args: dict, conf: NetConf):
    valid = conf.raw.get("cni.dev/valid-attachments")
    if not isinstance(valid, list):
        raise CniError(E_INVALID_CONFIG, "GC needs cni.dev/valid-attachments",
                       "the runtime must list the attachments that are still valid (may be empty)")
    keep = set()
    for a in valid:
        if not (isinstance(a, dict) and isinstance(a.get("containerID"), str)
                and isinstance(a.get("ifname"), str)):
            raise CniError(E_INVALID_CONFIG, "bad entry in cni.dev/valid-attachments",
                           f"each entry is {{\"containerID\": ..., \"ifname\": ...}}, got {a!r}")
        keep.add((a["containerID"], a["ifname"]))
    released = ctx.allocator(conf).gc(keep)
    if released:
        ctx.log(f"GC released {', '.join(map(ip_str, released))}")
    return None


COMMANDS = {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "STATUS": cmd_status, "GC": cmd_gc}
