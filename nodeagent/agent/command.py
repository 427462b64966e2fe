"""`nodeagent agent`: register the node, keep its heartbeat, run the overlay, write the subnet
file for the CNI plugin, masquerade pod traffic that leaves the cluster, run this node's pods and
the service proxy (`--proxy-mode`), all in one process.

The agent works on the network namespace it runs in: on a real host that is the host's; in the
lab, each node's agent is started inside that node's namespace."""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from control.client import ApiClient, Informer
from nodeagent.overlay.model import UNDERLAY_IP_ANNOTATION, VTEP_MAC_ANNOTATION, OverlayConfig

from . import forward, masquerade, nodeinfo, subnet
from .overlay_sync import OverlaySync
from .registration import Registrar

log = logging.getLogger("nodeagent.agent")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default="/var/lib/nodeagent/node.kubeconfig",
                   help="the node's credential from `nodeagent join` (default: %(default)s)")
    p.add_argument("--server", default="", help="API server URL(s), comma-separated; overrides the kubeconfig's")
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--underlay-interface", default="", help="the interface between nodes (default: the default route's)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16")
    p.add_argument("--run-dir", default="/run/nodeagent", help="where subnet.env is written")
    p.add_argument("--vxlan-device", default="nodeagent.1")
    p.add_argument("--vni", type=int, default=1)
    p.add_argument("--vxlan-port", type=int, default=8472)
    p.add_argument("--mtu", type=int, default=0, help="overlay MTU (default: underlay MTU - 50)")
    p.add_argument("--no-vxlan-checksum-offload", action="store_true",
                   help="turn transmit checksum offload off on the VXLAN device (kernels hit by "
                        "kubernetes/kubernetes#88986 with NAT on encapsulated traffic)")
    p.add_argument("--direct-routing", action="store_true",
                   help="route to nodes on the same L2 network directly, without VXLAN")
    p.add_argument("--no-masquerade", action="store_true")
    p.add_argument("--data-dir", default="/var/lib/nodeagent", help="pod runtime state lives in <data-dir>/pods")
    p.add_argument("--cni-conf-dir", default="/etc/cni/net.d")
    p.add_argument("--cni-bin-dir", default="/opt/cni/bin", help="comma-separated plugin directories")
    p.add_argument("--cni-bridge", default="cni0")
    p.add_argument("--cni-ipam-dir", default="/var/lib/cni/networks", help="the CNI plugin's IPAM state")
    p.add_argument("--no-cni-install", action="store_true",
                   help="do not install our CNI plugin and conflist (use the conflist already in --cni-conf-dir)")
    p.add_argument("--netns-prefix", default="nap-", help="pod namespaces are named <prefix><pod uid>")
    p.add_argument("--restart-backoff", type=float, default=10.0, help="first crash-loop back-off in seconds (doubles up to 300)")
    p.add_argument("--no-pods", action="store_true", help="do not run pods (overlay and registration only)")
    p.add_argument("--proxy-mode", choices=["nftables", "iptables", "none"], default="nftables",
                   help="run the service proxy in this process (default: %(default)s; none: leave it out)")
    p.add_argument("--nodeport-addresses", default="", help="CIDRs whose local addresses serve node ports (default: all)")
    p.add_argument("--lease-seconds", type=int, default=40)
    p.add_argument("--renew-interval", type=float, default=10.0)
    p.add_argument("--log-level", default="info")


def client_for(args: argparse.Namespace) -> ApiClient:
    servers = [s.strip() for s in args.server.split(",") if s.strip()]
    if os.path.exists(args.kubeconfig):
        return ApiClient.from_kubeconfig(args.kubeconfig, servers or None)
    if not servers:
        raise SystemExit(f"{args.kubeconfig} does not exist: run `nodeagent join` first, or pass --server")
    if any(s.startswith("https://") for s in servers):
        raise SystemExit(f"an https server needs a credential: {args.kubeconfig} does not exist")
    return ApiClient(servers)


def install_cni(args: argparse.Namespace, subnet_path: str, mtu: int) -> None:
    """Our plugin into the first CNI bin dir and its conflist, reading the subnet file we write."""
    from cni import install
    bin_dir = [d for d in args.cni_bin_dir.split(",") if d][0]
    install.write_executable(bin_dir)
    conf = install.conflist(subnet_file=subnet_path, bridge=args.cni_bridge, mtu=mtu, data_dir=args.cni_ipam_dir)
    install.write_conflist(args.cni_conf_dir, conf)


async def main(args: argparse.Namespace) -> int:
    from nodeagent.overlay.apply import OverlayApplier
    from nodeagent.overlay.netlink import NetlinkBackend

    ipaddress.ip_network(args.cluster_cidr, strict=True)
    iface = args.underlay_interface or nodeinfo.default_interface()
    ip, prefix, mtu = nodeinfo.interface_ipv4(iface)
    underlay_net = str(ipaddress.ip_interface(f"{ip}/{prefix}").network)
    config = OverlayConfig(args.vxlan_device, args.vni, args.vxlan_port, args.mtu, args.direct_routing,
                           not args.no_vxlan_checksum_offload)
    client = client_for(args)
    loop = asyncio.get_running_loop()
    kernel = ThreadPoolExecutor(1, thread_name_prefix="kernel")  # owns the netlink socket
    backend = await loop.run_in_executor(kernel, NetlinkBackend)
    overlay = OverlaySync(OverlayApplier(backend), args.node_name, config, underlay_device=iface,
                          underlay_ip=ip, underlay_mtu=mtu, underlay_net=underlay_net, kernel=kernel)
    await loop.run_in_executor(kernel, overlay.ensure_device)
    subnet_path = os.path.join(args.run_dir, "subnet.env")
    state = {"subnet": False, "published_mac": "", "forward_due": 0.0}

    def annotations() -> dict:
        state["published_mac"] = overlay.vtep_mac
        return {VTEP_MAC_ANNOTATION: overlay.vtep_mac, UNDERLAY_IP_ANNOTATION: ip}

    def ready() -> tuple[bool, str]:
        if not overlay.pod_cidr:
            return False, "waiting for a podCIDR"
        if not (overlay.in_place and state["subnet"]):
            return False, "overlay network not ready"
        return True, "nodeagent is posting ready status"

    registrar = Registrar(client, args.node_name, ip, annotations=annotations, ready=ready,
                          lease_seconds=args.lease_seconds, renew_interval=args.renew_interval)
    nodes = Informer(client, "v1", "nodes", handler=overlay.on_node)

    async def node_setup_pass(written_for: str) -> str:
        """One pass of node_setup (below)."""
        if overlay.pod_cidr and overlay.pod_cidr != written_for and overlay.in_place:
            dev_mtu = config.device_mtu(mtu)
            subnet.write(subnet_path, subnet.render(args.cluster_cidr, overlay.pod_cidr, dev_mtu, not args.no_masquerade))
            if not args.no_cni_install:
                await loop.run_in_executor(None, install_cni, args, subnet_path, dev_mtu)
            if not args.no_masquerade:
                await loop.run_in_executor(kernel, masquerade.apply, args.cluster_cidr)
            written_for = overlay.pod_cidr
            state["subnet"] = True
            log.info("podCIDR %s: wrote %s", overlay.pod_cidr, subnet_path)
            if registrar.registered.is_set():
                await registrar.post_status()
        if registrar.registered.is_set() and overlay.vtep_mac and overlay.vtep_mac != state["published_mac"]:
            try:
                await client.patch("v1", "nodes", "", args.node_name, {"metadata": {"annotations": annotations()}})
            except Exception as err:
                state["published_mac"] = ""
                log.warning("publishing the VTEP MAC failed: %s", err)
        if not args.no_masquerade and written_for and \
                not await loop.run_in_executor(kernel, masquerade.present, args.cluster_cidr):
            await loop.run_in_executor(kernel, masquerade.apply, args.cluster_cidr)  # repair
        if time.monotonic() >= state["forward_due"]:   # a firewall may start dropping at any time
            state["forward_due"] = time.monotonic() + 10
            changed = await loop.run_in_executor(kernel, forward.apply, args.cluster_cidr)
            if changed:
                log.info("FORWARD drops forwarded traffic (%s): pod traffic accepted in %s",
                         ", ".join(changed), forward.CHAIN)
        return written_for

    async def node_setup() -> None:
        """Once the podCIDR is known: the subnet file, masquerade; and keep the published VTEP
        MAC right when the device had to be recreated."""
        written_for = ""
        while True:
            try:
                written_for = await node_setup_pass(written_for)
            except Exception as err:  # a failed step is retried on the next pass, never fatal
                log.warning("node setup: %s", err)
            await asyncio.sleep(1.0)

    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    jobs = [registrar.run(), nodes.run(), overlay.run(), node_setup()]
    if not args.no_pods:
        from nodeagent.pods.manager import PodManager
        from nodeagent.pods.sandbox import Sandboxes
        sandboxes = Sandboxes(args.cni_conf_dir, [d for d in args.cni_bin_dir.split(",") if d],
                              os.path.join(args.data_dir, "cni-cache"))
        pods = PodManager(client, args.node_name, ip, sandboxes, os.path.join(args.data_dir, "pods"),
                          netns_prefix=args.netns_prefix, backoff_base=args.restart_backoff)
        jobs.append(pods.run())
    if args.proxy_mode != "none":
        from nodeagent.proxy import command as proxy
        # the proxy's own defaults (ports, sync periods, table...), with what the agent decides
        pparser = argparse.ArgumentParser()
        proxy.add_arguments(pparser)
        pargs = pparser.parse_args([])
        pargs.mode, pargs.node_name, pargs.cluster_cidr = args.proxy_mode, args.node_name, args.cluster_cidr
        pargs.nodeport_addresses = args.nodeport_addresses
        _, _, engine = proxy.build(pargs)
        runner, informers = proxy.make_runner(client, engine, pargs)
        jobs.append(runner.run(informers))
    tasks = [asyncio.create_task(t) for t in jobs]
    log.info("agent for node %s: underlay %s %s/%d mtu %d, VTEP %s", args.node_name, iface, ip, prefix, mtu, overlay.vtep_mac)
    done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
    for t in done:
        if t is not stop and t.exception():
            log.error("agent task failed: %r", t.exception())
            return 1
    # Nothing is torn down on exit: traffic keeps flowing while the agent is away, and the next
    # start reconciles what it finds.
    await client.close()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    return asyncio.run(main(args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nodeagent agent")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
