"""Defaulting, as Kubernetes' SetDefaults_* functions do it, so that what is stored (and what
kubectl, the scheduler and the agents read back) is complete. Mutates the object in place."""
from __future__ import annotations

from typing import Callable


def pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    for kind in ("initContainers", "containers"):
        for c in spec.get(kind) or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = c.get("image") or ""
            c.setdefault("imagePullPolicy", "Always" if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1] else "IfNotPresent")
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                pr = c.get(probe)
                if pr:
                    pr.setdefault("timeoutSeconds", 1)
                    pr.setdefault("periodSeconds", 10)
                    pr.setdefault("successThreshold", 1)
                    pr.setdefault("failureThreshold", 3)
                    if pr.get("httpGet"):
                        pr["httpGet"].setdefault("path", "/")
                        pr["httpGet"].setdefault("scheme", "HTTP")
    for t in spec.get("tolerations") or []:
        if t.get("operator") is None:
            t["operator"] = "Equal"


def pod(obj: dict) -> None:
    pod_spec(obj["spec"])


def service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    stype = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if stype == "ExternalName":
        return
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        if p.get("targetPort") is None:
            p["targetPort"] = p["port"]
    if spec["sessionAffinity"] == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {}).setdefault("clientIP", {}).setdefault("timeoutSeconds", 10800)
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


def endpoints(obj: dict) -> None:
    for s in obj.get("subsets") or []:
        for p in s.get("ports") or []:
            p.setdefault("protocol", "TCP")


def endpointslice(obj: dict) -> None:
    for p in obj.get("ports") or []:
        p.setdefault("protocol", "TCP")
    for ep in obj.get("endpoints") or []:
        ep.setdefault("conditions", {})


def replicaset(obj: dict) -> None:
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    if spec.get("template"):
        pod_spec(spec["template"]["spec"])


def deployment(obj: dict) -> None:
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    strat = spec.setdefault("strategy", {})
    if strat.setdefault("type", "RollingUpdate") == "RollingUpdate":
        ru = strat.setdefault("rollingUpdate", {})
        ru.setdefault("maxSurge", "25%")
        ru.setdefault("maxUnavailable", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    pod_spec(spec["template"]["spec"])


def namespace(obj: dict) -> None:
    obj.setdefault("spec", {})
    obj.setdefault("status", {}).setdefault("phase", "Active")


def node(obj: dict) -> None:
    obj.setdefault("spec", {})
    status = obj.setdefault("status", {})
    for key in ("capacity", "allocatable"):
        if status.get(key) is not None:
            status[key] = {k: str(v) for k, v in status[key].items()}


def noop(obj: dict) -> None:
    pass


DEFAULTERS: dict[str, Callable[[dict], None]] = {
    "Pod": pod, "Service": service, "Endpoints": endpoints, "EndpointSlice": endpointslice,
    "ReplicaSet": replicaset, "Deployment": deployment, "Namespace": namespace, "Node": node,
    "Lease": noop,
}
