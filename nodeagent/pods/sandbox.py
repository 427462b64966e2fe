"""A pod's sandbox: its network namespace and its CNI attachment (eth0). The CNI plugins are
found through the conflist and called per spec by cni.runtime, exactly as any runtime calls
them; the result is cached for DEL, as libcni does."""
from __future__ import annotations

import json
import os
import re
import subprocess

NAME = re.compile(r"^[a-z0-9][-a-z0-9]{0,62}$")
NETNS_DIR = "/run/netns"


class SandboxError(Exception):
    pass


def load_conflist(conf_dir: str) -> dict:
    """The first network configuration in conf_dir, in lexical order (libcni's rule)."""
    try:
        names = sorted(n for n in os.listdir(conf_dir) if n.endswith((".conflist", ".conf", ".json")))
    except FileNotFoundError:
        names = []
    if not names:
        raise SandboxError(f"no CNI network configuration in {conf_dir}")
    with open(os.path.join(conf_dir, names[0])) as f:
        conf = json.load(f)
    if "plugins" not in conf:  # a single-plugin .conf
        conf = {"cniVersion": conf.get("cniVersion", "0.3.1"), "name": conf["name"], "plugins": [conf]}
    return conf


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def create_netns(name: str) -> None:
    if not NAME.match(name):
        raise SandboxError(f"bad namespace name {name!r}")
    if not os.path.exists(netns_path(name)):
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, capture_output=True)


def delete_netns(name: str) -> None:
    if NAME.match(name) and os.path.exists(netns_path(name)):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def list_netns(prefix: str) -> list[str]:
    try:
        return [n for n in os.listdir(NETNS_DIR) if n.startswith(prefix)]
    except FileNotFoundError:
        return []


def pod_ip(result: dict) -> str:
    """The first IPv4 address of a CNI result (any result version)."""
    for ip in result.get("ips") or []:
        addr = ip.get("address", "")
        if "." in addr:
            return addr.split("/")[0]
    raise SandboxError(f"the CNI result has no IPv4 address: {json.dumps(result)[:200]}")


def cni_args(pod: dict) -> str:
    m = pod["metadata"]
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={m.get('namespace', '')};K8S_POD_NAME={m['name']};"
            f"K8S_POD_INFRA_CONTAINER_ID={m['uid']};K8S_POD_UID={m['uid']}")


def port_mappings(pod: dict) -> list[dict]:
    """hostPort mappings, the runtimeConfig the portmap plugin takes."""
    out = []
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append({"hostPort": p["hostPort"], "containerPort": p["containerPort"],
                            "protocol": p.get("protocol", "TCP").lower(), **({"hostIP": p["hostIP"]} if p.get("hostIP") else {})})
    return out


class Sandboxes:
    """Create and remove sandboxes with a CNI runtime (cni.runtime.Runtime)."""

    def __init__(self, conf_dir: str, bin_dirs: list[str], cache_dir: str):
        self.conf_dir, self.bin_dirs, self.cache_dir = conf_dir, bin_dirs, cache_dir

    def runtime(self):
        from cni.runtime import Runtime
        return Runtime(load_conflist(self.conf_dir), self.bin_dirs, self.cache_dir)

    def add(self, name: str, pod: dict) -> str:
        """Namespace and network; returns the pod IP. A failure removes what was made."""
        create_netns(name)
        try:
            rt = self.runtime()
            caps = {"portMappings": port_mappings(pod)} if port_mappings(pod) else None
            result = rt.add(pod["metadata"]["uid"], netns_path(name), "eth0", cni_args(pod), capability_args=caps)
            return pod_ip(result)
        except Exception as err:
            self.remove(name, pod["metadata"]["uid"])
            raise SandboxError(f"network setup for pod {pod['metadata']['name']} failed: {err}") from err

    def remove(self, name: str, uid: str) -> None:
        """CNI DEL (idempotent per spec, also when the namespace is gone), then the namespace."""
        try:
            rt = self.runtime()
            rt.delete(uid, netns_path(name) if os.path.exists(netns_path(name)) else "", "eth0")
        except Exception:
            pass  # DEL of something never added, or no config any more: nothing else to do
        delete_netns(name)
