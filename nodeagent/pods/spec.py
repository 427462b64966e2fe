"""From a pod's spec to what to run: argv, environment, working directory; and the named ports
probes refer to. Pure functions, with Kubernetes' rules ($(VAR) expansion in command and args,
$$ escapes, env fieldRefs)."""
from __future__ import annotations

import re

from .images import NETEXEC, entrypoint


class SpecError(ValueError):
    """The container cannot be run here; the message says why (it becomes the waiting reason)."""


VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return VAR.sub(sub, text)


def field_ref(pod: dict, path: str, node: str, pod_ip: str) -> str:
    meta, spec = pod["metadata"], pod["spec"]
    table = {"metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
             "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", node),
             "spec.serviceAccountName": spec.get("serviceAccountName", ""),
             "status.podIP": pod_ip, "status.hostIP": ""}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    if path not in table:
        raise SpecError(f"fieldRef {path} is not supported")
    return table[path]


def environment(pod: dict, container: dict, node: str, pod_ip: str, host_ip: str = "") -> dict[str, str]:
    meta = pod["metadata"]
    env = {"POD_NAME": meta["name"], "POD_NAMESPACE": meta.get("namespace", ""), "NODE_NAME": node,
           "POD_IP": pod_ip, "HOSTNAME": meta["name"]}
    for e in container.get("env") or []:
        if "value" in e and e["value"] is not None:
            env[e["name"]] = expand(e["value"], env)
        elif (e.get("valueFrom") or {}).get("fieldRef"):
            env[e["name"]] = field_ref(pod, e["valueFrom"]["fieldRef"]["fieldPath"], node, pod_ip)
        elif e.get("valueFrom"):
            raise SpecError(f"env {e['name']}: only value and fieldRef are supported")
        else:
            env[e["name"]] = ""
    if host_ip:
        env.setdefault("HOST_IP", host_ip)
    return env


def argv(container: dict, env: dict[str, str]) -> list[str]:
    """Kubernetes' rule: command replaces the image's entrypoint, args its default arguments."""
    image_entry = entrypoint(container.get("image") or "")
    command = [expand(c, env) for c in container.get("command") or []]
    args = [expand(a, env) for a in container.get("args") or []]
    if command:
        if command[0] in ("netexec", "/agnhost") or (image_entry and image_entry[0] == "agnhost" and command[0] == "agnhost"):
            command = _agnhost(command)
        return command + args
    if image_entry is None:
        raise SpecError(f"image {container.get('image')!r} is not built in and the container has no command "
                        "(images are not pulled: give a command that exists on the node)")
    if image_entry == ["agnhost"]:
        return _agnhost(["agnhost"] + args)
    return image_entry + args


def _agnhost(cmd: list[str]) -> list[str]:
    # agnhost's subcommand netexec is ours; its flags (--http-port, --udp-port) match ours.
    rest = cmd[1:]
    if cmd[0] in ("netexec",):
        return NETEXEC + rest
    if rest and rest[0] == "netexec":
        return NETEXEC + rest[1:]
    raise SpecError(f"agnhost {' '.join(rest[:1])}: only the netexec subcommand is built in")


def resolve_port(container: dict, port) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise SpecError(f"port {port!r} is not a port of container {container['name']}")
