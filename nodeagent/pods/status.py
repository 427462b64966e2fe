"""A pod's status as Kubernetes shows it, computed from the runtime's view of its containers.
Pure: the same inputs give the same status (timestamps are passed in)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ContainerView:
    name: str
    image: str
    state: str = "waiting"          # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str = ""
    finished_at: str = ""
    exit_code: int = 0
    restart_count: int = 0
    ready: bool = False
    last_terminated: dict | None = None
    container_id: str = ""

    def state_dict(self) -> dict:
        if self.state == "running":
            return {"running": {"startedAt": self.started_at}}
        if self.state == "terminated":
            return {"terminated": {"exitCode": self.exit_code, "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                                   "startedAt": self.started_at, "finishedAt": self.finished_at,
                                   **({"message": self.message} if self.message else {})}}
        return {"waiting": {"reason": self.reason, **({"message": self.message} if self.message else {})}}


@dataclass
class PodView:
    containers: list[ContainerView]
    pod_ip: str = ""
    host_ip: str = ""
    start_time: str = ""
    sandbox_ready: bool = False
    will_restart: bool = True        # restartPolicy says terminated containers come back
    message: str = ""
    transitions: dict = field(default_factory=dict)   # condition type -> (status, time)


def phase(view: PodView) -> str:
    cs = view.containers
    if not view.sandbox_ready or any(c.state == "waiting" and c.restart_count == 0 for c in cs):
        return "Pending"
    if any(c.state == "running" for c in cs) or view.will_restart:
        return "Running"
    if all(c.state == "terminated" for c in cs):
        return "Succeeded" if all(c.exit_code == 0 for c in cs) else "Failed"
    return "Running"


def conditions(view: PodView, now: str) -> list[dict]:
    ready = view.sandbox_ready and all(c.ready for c in view.containers)
    wanted = {"PodScheduled": True, "Initialized": True, "ContainersReady": ready, "Ready": ready}
    out = []
    for ctype, ok in wanted.items():
        status = "True" if ok else "False"
        prev = view.transitions.get(ctype)
        when = prev[1] if prev and prev[0] == status else now
        view.transitions[ctype] = (status, when)
        cond = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": when}
        if not ok and ctype in ("ContainersReady", "Ready"):
            not_ready = [c.name for c in view.containers if not c.ready]
            cond["reason"] = "ContainersNotReady"
            cond["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
        out.append(cond)
    return out


def pod_status(view: PodView, now: str) -> dict:
    status = {"phase": phase(view), "conditions": conditions(view, now), "hostIP": view.host_ip,
              "containerStatuses": [{
                  "name": c.name, "ready": c.ready, "restartCount": c.restart_count, "image": c.image,
                  "imageID": "", "started": c.state == "running", "state": c.state_dict(),
                  "lastState": {"terminated": c.last_terminated} if c.last_terminated else {},
                  **({"containerID": c.container_id} if c.container_id else {})} for c in view.containers],
              "qosClass": "BestEffort"}
    if view.host_ip:
        status["hostIPs"] = [{"ip": view.host_ip}]
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    if view.start_time:
        status["startTime"] = view.start_time
    if view.message:
        status["message"] = view.message
    return status
