"""Semantic validation: what the schema cannot say. Each check returns causes, one per bad field,
worded as Kubernetes words them (apimachinery's validation messages), so that kubectl users see
familiar errors."""
from __future__ import annotations

import ipaddress
import re
from typing import Callable

from .errors import cause
from .selectors import SelectorError, selector_from_dict

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
PROTOCOLS = ("TCP", "UDP", "SCTP")
INT_OR_PERCENT = re.compile(r"^[0-9]+%$")

Causes = list[dict]


def required(field: str) -> dict:
    return cause(field, "Required value", "FieldValueRequired")


def unsupported(field: str, value, allowed) -> dict:
    opts = ", ".join(f'"{a}"' for a in allowed)
    return cause(field, f'Unsupported value: "{value}": supported values: {opts}', "FieldValueNotSupported")


def bad(field: str, value, why: str) -> dict:
    shown = f'"{value}"' if isinstance(value, str) else value
    return cause(field, f"Invalid value: {shown}: {why}")


def dns_label(field: str, value: str) -> Causes:
    if len(value) > 63:
        return [bad(field, value, "must be no more than 63 characters")]
    if not DNS1123_LABEL.match(value):
        return [bad(field, value, "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric character")]
    return []


def dns_subdomain(field: str, value: str) -> Causes:
    if len(value) > 253:
        return [bad(field, value, "must be no more than 253 characters")]
    if not DNS1123_SUBDOMAIN.match(value):
        return [bad(field, value, "a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character")]
    return []


def qualified_name(field: str, key: str) -> Causes:
    prefix, _, name = key.rpartition("/")
    out: Causes = []
    if prefix:
        out += dns_subdomain(field, prefix)
    if not name or len(name) > 63 or not QUALIFIED_NAME.match(name):
        out.append(bad(field, key, "name part must consist of alphanumeric characters, '-', '_' or "
                       "'.', and must start and end with an alphanumeric character (at most 63 characters)"))
    return out


def label_value(field: str, value: str) -> Causes:
    if value and (len(value) > 63 or not QUALIFIED_NAME.match(value)):
        return [bad(field, value, "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric character")]
    return []


def labels(field: str, values: dict | None) -> Causes:
    out: Causes = []
    for k, v in (values or {}).items():
        out += qualified_name(field, k) + label_value(f"{field}", v)
    return out


def port_number(field: str, value, allow_zero: bool = False) -> Causes:
    lo = 0 if allow_zero else 1
    if not isinstance(value, int) or not lo <= value <= 65535:
        return [bad(field, value, f"must be between {lo} and 65535, inclusive")]
    return []


def protocol(field: str, value) -> Causes:
    return [] if value in PROTOCOLS else [unsupported(field, value, PROTOCOLS)]


def ip(field: str, value: str) -> Causes:
    try:
        ipaddress.ip_address(value)
        return []
    except ValueError:
        return [bad(field, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]


def cidr(field: str, value: str) -> Causes:
    try:
        ipaddress.ip_network(value, strict=True)
        return []
    except ValueError:
        return [bad(field, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]


def int_or_percent(field: str, value) -> Causes:
    if isinstance(value, int):
        return [] if value >= 0 else [bad(field, value, "must be greater than or equal to 0")]
    if not INT_OR_PERCENT.match(value):
        return [bad(field, value, "a valid percent string must be a numeric string followed by an ending '%'")]
    return []


def target_port(field: str, value) -> Causes:
    if isinstance(value, int):
        return port_number(field, value)
    if not IANA_SVC_NAME.match(value) or "--" in value or not re.search("[a-z]", value):
        return [bad(field, value, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
                    " with at most 15 characters, at least one letter, no consecutive hyphens")]
    return []


# -- metadata -----------------------------------------------------------------------------
def object_meta(obj: dict, *, namespaced: bool, name_check: Callable[[str, str], Causes]) -> Causes:
    meta = obj.get("metadata") or {}
    out: Causes = []
    name = meta.get("name")
    if not name:
        out.append(required("metadata.name"))
    else:
        out += name_check("metadata.name", name)
    if namespaced and meta.get("namespace"):
        out += dns_label("metadata.namespace", meta["namespace"])
    out += labels("metadata.labels", meta.get("labels"))
    for k in meta.get("annotations") or {}:
        out += qualified_name("metadata.annotations", k)
    size = sum(len(k) + len(v) for k, v in (meta.get("annotations") or {}).items())
    if size > 256 * 1024:
        out.append(cause("metadata.annotations", "Too long: must have at most 262144 bytes", "FieldValueTooLong"))
    for i, f in enumerate(meta.get("finalizers") or []):
        out += qualified_name(f"metadata.finalizers[{i}]", f)
    return out


# -- per kind -----------------------------------------------------------------------------
def container(path: str, c: dict) -> Causes:
    out = dns_label(f"{path}.name", c["name"])
    names: set[str] = set()
    for j, p in enumerate(c.get("ports") or []):
        pp = f"{path}.ports[{j}]"
        out += port_number(f"{pp}.containerPort", p["containerPort"])
        if p.get("hostPort") is not None:
            out += port_number(f"{pp}.hostPort", p["hostPort"], allow_zero=True)
        out += protocol(f"{pp}.protocol", p.get("protocol", "TCP"))
        if p.get("name"):
            out += target_port(f"{pp}.name", p["name"])
            if p["name"] in names:
                out.append(cause(f"{pp}.name", f'Duplicate value: "{p["name"]}"', "FieldValueDuplicate"))
            names.add(p["name"])
    for j, e in enumerate(c.get("env") or []):
        if not ENV_NAME.match(e["name"]):
            out.append(bad(f"{path}.env[{j}].name", e["name"], "a valid environment variable name must "
                           "consist of alphabetic characters, digits, '_', '-', or '.'"))
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        pr = c.get(probe)
        if not pr:
            continue
        handlers = [h for h in ("httpGet", "tcpSocket", "exec") if pr.get(h)]
        if len(handlers) != 1:
            out.append(cause(f"{path}.{probe}", "must specify exactly one handler type", "FieldValueRequired"))
        for h in ("httpGet", "tcpSocket"):
            if pr.get(h):
                out += target_port(f"{path}.{probe}.{h}.port", pr[h]["port"])
        for num in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold"):
            if pr.get(num) is not None and pr[num] < 0:
                out.append(bad(f"{path}.{probe}.{num}", pr[num], "must be greater than or equal to 0"))
    return out


def pod_spec(path: str, spec: dict) -> Causes:
    out: Causes = []
    if not spec.get("containers"):
        out.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(kind) or []):
            out += container(f"{path}.{kind}[{i}]", c)
            if c["name"] in seen:
                out.append(cause(f"{path}.{kind}[{i}].name", f'Duplicate value: "{c["name"]}"',
                                 "FieldValueDuplicate"))
            seen.add(c["name"])
    rp = spec.get("restartPolicy")
    if rp is not None and rp not in ("Always", "OnFailure", "Never"):
        out.append(unsupported(f"{path}.restartPolicy", rp, ("Always", "OnFailure", "Never")))
    if spec.get("nodeName"):
        out += dns_subdomain(f"{path}.nodeName", spec["nodeName"])
    out += labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    for i, t in enumerate(spec.get("tolerations") or []):
        op = t.get("operator", "Equal")
        if op not in ("Equal", "Exists"):
            out.append(unsupported(f"{path}.tolerations[{i}].operator", op, ("Equal", "Exists")))
        elif op == "Exists" and t.get("value"):
            out.append(bad(f"{path}.tolerations[{i}].operator", op, "value must be empty when `operator` is 'Exists'"))
        if t.get("effect") and t["effect"] not in TAINT_EFFECTS:
            out.append(unsupported(f"{path}.tolerations[{i}].effect", t["effect"], TAINT_EFFECTS))
    tgp = spec.get("terminationGracePeriodSeconds")
    if tgp is not None and tgp < 0:
        out.append(bad(f"{path}.terminationGracePeriodSeconds", tgp, "must be greater than or equal to 0"))
    return out


def validate_pod(obj: dict) -> Causes:
    return pod_spec("spec", obj["spec"])


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def validate_service(obj: dict) -> Causes:
    spec = obj.get("spec") or {}
    out: Causes = []
    stype = spec.get("type", "ClusterIP")
    if stype not in SERVICE_TYPES:
        return [unsupported("spec.type", stype, SERVICE_TYPES)]
    ports = spec.get("ports") or []
    headless = spec.get("clusterIP") == "None"
    if not ports and stype != "ExternalName" and not headless:
        out.append(required("spec.ports"))
    if stype == "ExternalName":
        if not spec.get("externalName"):
            out.append(required("spec.externalName"))
    names: set[str] = set()
    seen: set[tuple] = set()
    for i, p in enumerate(ports):
        path = f"spec.ports[{i}]"
        if len(ports) > 1 and not p.get("name"):
            out.append(required(f"{path}.name"))
        if p.get("name"):
            out += dns_label(f"{path}.name", p["name"])
            if p["name"] in names:
                out.append(cause(f"{path}.name", f'Duplicate value: "{p["name"]}"', "FieldValueDuplicate"))
            names.add(p["name"])
        out += port_number(f"{path}.port", p["port"])
        proto = p.get("protocol", "TCP")
        out += protocol(f"{path}.protocol", proto)
        if (p["port"], proto) in seen:
            out.append(cause(f"{path}", f'Duplicate value: {{"port": {p["port"]}, "protocol": "{proto}"}}',
                             "FieldValueDuplicate"))
        seen.add((p["port"], proto))
        if p.get("targetPort") is not None:
            out += target_port(f"{path}.targetPort", p["targetPort"])
        if p.get("nodePort") is not None and stype not in ("NodePort", "LoadBalancer"):
            out.append(bad(f"{path}.nodePort", p["nodePort"], "may not be used when `type` is 'ClusterIP'"))
    cip = spec.get("clusterIP")
    if cip and cip != "None":
        out += ip("spec.clusterIP", cip)
    if headless and stype not in ("ClusterIP", "ExternalName"):
        out.append(bad("spec.clusterIP", "None", f"may not be set to 'None' for {stype} services"))
    for i, eip in enumerate(spec.get("externalIPs") or []):
        out += ip(f"spec.externalIPs[{i}]", eip)
    out += labels("spec.selector", spec.get("selector"))
    sa = spec.get("sessionAffinity", "None")
    if sa not in ("None", "ClientIP"):
        out.append(unsupported("spec.sessionAffinity", sa, ("ClientIP", "None")))
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or not 0 < timeout <= 86400):
        out.append(bad("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                       "must be greater than 0 and less than 86400"))
    etp = spec.get("externalTrafficPolicy")
    if etp is not None:
        if etp not in ("Cluster", "Local"):
            out.append(unsupported("spec.externalTrafficPolicy", etp, ("Cluster", "Local")))
        elif stype not in ("NodePort", "LoadBalancer") and not spec.get("externalIPs"):
            out.append(bad("spec.externalTrafficPolicy", etp,
                           "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
    itp = spec.get("internalTrafficPolicy")
    if itp is not None and itp not in ("Cluster", "Local"):
        out.append(unsupported("spec.internalTrafficPolicy", itp, ("Cluster", "Local")))
    return out


def validate_service_status(obj: dict) -> Causes:
    out: Causes = []
    for i, ing in enumerate(((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []):
        if ing.get("ip"):
            out += ip(f"status.loadBalancer.ingress[{i}].ip", ing["ip"])
    return out


def validate_node(obj: dict) -> Causes:
    spec = obj.get("spec") or {}
    out: Causes = []
    if spec.get("podCIDR"):
        out += cidr("spec.podCIDR", spec["podCIDR"])
    for i, c in enumerate(spec.get("podCIDRs") or []):
        out += cidr(f"spec.podCIDRs[{i}]", c)
    for i, t in enumerate(spec.get("taints") or []):
        out += qualified_name(f"spec.taints[{i}].key", t["key"])
        if t["effect"] not in TAINT_EFFECTS:
            out.append(unsupported(f"spec.taints[{i}].effect", t["effect"], TAINT_EFFECTS))
    for i, a in enumerate((obj.get("status") or {}).get("addresses") or []):
        if a["type"] in ("InternalIP", "ExternalIP"):
            out += ip(f"status.addresses[{i}].address", a["address"])
    return out


def _endpoint_ports(path: str, ports: list) -> Causes:
    out: Causes = []
    for j, p in enumerate(ports or []):
        if p.get("port") is not None:
            out += port_number(f"{path}[{j}].port", p["port"])
        out += protocol(f"{path}[{j}].protocol", p.get("protocol", "TCP"))
        if p.get("name"):
            out += dns_label(f"{path}[{j}].name", p["name"])
    return out


def validate_endpoints(obj: dict) -> Causes:
    out: Causes = []
    for i, s in enumerate(obj.get("subsets") or []):
        for key in ("addresses", "notReadyAddresses"):
            for j, a in enumerate(s.get(key) or []):
                out += ip(f"subsets[{i}].{key}[{j}].ip", a["ip"])
        out += _endpoint_ports(f"subsets[{i}].ports", s.get("ports"))
    return out


ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")


def validate_endpointslice(obj: dict) -> Causes:
    out: Causes = []
    at = obj["addressType"]
    if at not in ADDRESS_TYPES:
        return [unsupported("addressType", at, ADDRESS_TYPES)]
    eps = obj.get("endpoints") or []
    if len(eps) > 1000:
        out.append(cause("endpoints", "Too many: must have at most 1000 items", "FieldValueTooMany"))
    for i, ep in enumerate(eps):
        if not ep["addresses"] or len(ep["addresses"]) > 100:
            out.append(bad(f"endpoints[{i}].addresses", len(ep["addresses"]), "must have between 1 and 100 addresses"))
        for j, a in enumerate(ep["addresses"]):
            path = f"endpoints[{i}].addresses[{j}]"
            if at == "FQDN":
                out += dns_subdomain(path, a)
                continue
            try:
                ver = ipaddress.ip_address(a).version
            except ValueError:
                out.append(bad(path, a, "must be a valid IP address"))
                continue
            if ver != (4 if at == "IPv4" else 6):
                out.append(bad(path, a, f"must be an {at} address"))
    if len(obj.get("ports") or []) > 100:
        out.append(cause("ports", "Too many: must have at most 100 items", "FieldValueTooMany"))
    out += _endpoint_ports("ports", obj.get("ports"))
    return out


def _selector_and_template(spec: dict, need_template: bool = True) -> Causes:
    out: Causes = []
    sel = spec.get("selector") or {}
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        out.append(cause("spec.selector", "Invalid value: empty selector is invalid for deployment", "FieldValueInvalid"))
        return out
    try:
        matcher = selector_from_dict(sel)
    except SelectorError as e:
        return [bad("spec.selector", str(sel), str(e))]
    out += labels("spec.selector.matchLabels", sel.get("matchLabels"))
    template = spec.get("template")
    if template is None:
        if need_template:
            out.append(required("spec.template"))
        return out
    tlabels = (template.get("metadata") or {}).get("labels") or {}
    if not matcher.matches(tlabels):
        out.append(bad("spec.template.metadata.labels", ",".join(f"{k}={v}" for k, v in tlabels.items()),
                       "`selector` does not match template `labels`"))
    out += labels("spec.template.metadata.labels", tlabels)
    out += pod_spec("spec.template.spec", template["spec"])
    return out


def validate_replicaset(obj: dict) -> Causes:
    spec = obj["spec"]
    out = _selector_and_template(spec, need_template=False)
    if spec.get("replicas") is not None and spec["replicas"] < 0:
        out.append(bad("spec.replicas", spec["replicas"], "must be greater than or equal to 0"))
    return out


def validate_deployment(obj: dict) -> Causes:
    spec = obj["spec"]
    out = _selector_and_template(spec)
    if spec.get("replicas") is not None and spec["replicas"] < 0:
        out.append(bad("spec.replicas", spec["replicas"], "must be greater than or equal to 0"))
    strat = spec.get("strategy") or {}
    stype = strat.get("type", "RollingUpdate")
    if stype not in ("RollingUpdate", "Recreate"):
        out.append(unsupported("spec.strategy.type", stype, ("Recreate", "RollingUpdate")))
    ru = strat.get("rollingUpdate")
    if ru:
        if stype == "Recreate":
            out.append(cause("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'", "FieldValueForbidden"))
        for f in ("maxSurge", "maxUnavailable"):
            if ru.get(f) is not None:
                out += int_or_percent(f"spec.strategy.rollingUpdate.{f}", ru[f])
        if _zero(ru.get("maxSurge")) and _zero(ru.get("maxUnavailable")):
            out.append(bad("spec.strategy.rollingUpdate.maxUnavailable", ru.get("maxUnavailable"),
                           "may not be 0 when `maxSurge` is 0"))
    return out


def _zero(v) -> bool:
    return v in (0, "0%")


def validate_lease(obj: dict) -> Causes:
    d = (obj.get("spec") or {}).get("leaseDurationSeconds")
    if d is not None and d <= 0:
        return [bad("spec.leaseDurationSeconds", d, "must be greater than 0")]
    return []


def validate_namespace(obj: dict) -> Causes:
    return []


VALIDATORS: dict[str, Callable[[dict], Causes]] = {
    "Pod": validate_pod, "Service": validate_service, "Node": validate_node,
    "Endpoints": validate_endpoints, "EndpointSlice": validate_endpointslice,
    "Deployment": validate_deployment, "ReplicaSet": validate_replicaset,
    "Lease": validate_lease, "Namespace": validate_namespace,
}

# Services and namespaces become DNS labels (<svc>.<ns>.svc), so their names are labels; the
# others are subdomains, as in Kubernetes' ValidateObjectMeta callers.
NAME_CHECKS: dict[str, Callable[[str, str], Causes]] = {
    "Service": dns_label, "Namespace": dns_label,
}


def validate(kind: str, obj: dict, namespaced: bool) -> Causes:
    out = object_meta(obj, namespaced=namespaced, name_check=NAME_CHECKS.get(kind, dns_subdomain))
    return out + VALIDATORS[kind](obj)
