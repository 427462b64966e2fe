"""One pod's life on this node, as one asyncio task: sandbox, containers, probes, restarts with
backoff, status; and, when the pod is deleted, the graceful stop and the cleanup."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Callable

from . import probes, process
from .spec import SpecError, argv, environment, resolve_port
from .state import PodState
from .status import ContainerView, PodView, pod_status

log = logging.getLogger("nodeagent.pods")


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Container:
    def __init__(self, spec: dict):
        self.spec = spec
        self.view = ContainerView(spec["name"], spec.get("image") or "")
        self.proc: process.Proc | None = None
        self.waiter: asyncio.Task | None = None
        self.next_start = 0.0        # monotonic time before which a restart waits (backoff)
        self.backoff = 0.0
        self.readiness: probes.ProbeState | None = None
        self.liveness: probes.ProbeState | None = None
        self.probe_tasks: list[asyncio.Task] = []


class PodWorker:
    def __init__(self, pod: dict, state: PodState, *, node: str, host_ip: str, sandboxes, executor,
                 patch_status: Callable, delete_pod: Callable, netns_prefix: str,
                 backoff_base: float = 10.0, backoff_max: float = 300.0):
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.key = f"{pod['metadata'].get('namespace', '')}/{pod['metadata']['name']}"
        self.state = state
        self.node, self.host_ip = node, host_ip
        self.sandboxes, self.executor = sandboxes, executor
        self.patch_status, self.delete_pod = patch_status, delete_pod
        self.netns = state.data.get("netns") or f"{netns_prefix}{self.uid}"
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        self.containers = [Container(c) for c in pod["spec"]["containers"]]
        self.view = PodView([c.view for c in self.containers], host_ip=host_ip)
        self.wake = asyncio.Event()
        self.gone = False            # the pod object no longer exists in the API
        self.last_status: dict | None = None
        self.host_network = bool(pod["spec"].get("hostNetwork"))

    # -- events from the manager ------------------------------------------------------------
    def update(self, pod: dict) -> None:
        self.pod = pod
        self.wake.set()

    def deleted(self) -> None:
        self.gone = True
        self.wake.set()

    # -- the pod's life -----------------------------------------------------------------------
    async def run(self) -> None:
        try:
            ready = await self._setup()
            while not ready and not self._terminating():
                try:  # the sandbox failed (e.g. no subnet yet): try again, or stop if deleted
                    await asyncio.wait_for(self.wake.wait(), 2.0)
                except TimeoutError:
                    pass
                self.wake.clear()
                if not self._terminating():
                    ready = await self._setup()
            if ready:
                while not self._terminating():
                    await self._step()
                    pending = [c.next_start - time.monotonic() for c in self.containers if c.proc is None]
                    try:
                        await asyncio.wait_for(self.wake.wait(), max(0.05, min([1.0] + pending)))
                    except TimeoutError:
                        pass
                    self.wake.clear()
            await self._teardown()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: worker failed", self.key)

    def _terminating(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    async def _setup(self) -> bool:
        loop = asyncio.get_running_loop()
        d = self.state.data
        if self.host_network:
            d["pod_ip"] = self.host_ip
            d["netns"] = ""
            self.netns = ""
        elif not d.get("pod_ip"):
            try:
                d["pod_ip"] = await loop.run_in_executor(self.executor, self.sandboxes.add, self.netns, self.pod)
            except Exception as err:
                log.warning("pod %s: %s", self.key, err)
                self.view.message = str(err)
                for c in self.containers:
                    c.view.reason, c.view.message = "ContainerCreating", "waiting for the pod network"
                await self._report()
                return False
            d["netns"] = self.netns
        d.setdefault("start_time", now())
        if not d.get("start_time"):
            d["start_time"] = now()
        self.state.save()
        self.view.pod_ip, self.view.start_time, self.view.sandbox_ready = d["pod_ip"], d["start_time"], True
        self._adopt()
        return True

    def _adopt(self) -> None:
        """Containers whose processes survived an agent restart are taken over, not restarted."""
        saved = self.state.data.get("containers", {})
        for c in self.containers:
            s = saved.get(c.spec["name"])
            if not s:
                continue
            c.view.restart_count = s.get("restart_count", 0)
            c.view.last_terminated = s.get("last_terminated")
            c.backoff = s.get("backoff", 0.0)
            proc = process.Proc(s["pid"], s["start_ticks"]) if s.get("pid") else None
            if proc and proc.alive():
                c.proc = proc
                c.view.state, c.view.reason, c.view.started_at = "running", "", s.get("started_at", "")
                c.view.container_id = f"nodeagent://{proc.pid}"
                c.waiter = asyncio.create_task(self._watch(c, proc))
                self._start_probes(c, adopted=True, ready=self._was_ready(c))
                log.info("pod %s: adopted container %s (pid %d)", self.key, c.spec["name"], proc.pid)

    def _was_ready(self, c: Container) -> bool:
        """The readiness this container had in the API before the agent restarted. An adopted
        container keeps it until its probe says otherwise: starting from "not ready" would take
        every endpoint of this node out of every service on every node for a probe period."""
        for cs in (self.pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") == c.spec["name"] and cs.get("containerID") == c.view.container_id:
                return bool(cs.get("ready"))
        return False

    def _save_containers(self) -> None:
        self.state.data["containers"] = {
            c.spec["name"]: {"pid": c.proc.pid if c.proc else 0, "start_ticks": c.proc.start_ticks if c.proc else 0,
                             "restart_count": c.view.restart_count, "started_at": c.view.started_at,
                             "last_terminated": c.view.last_terminated, "backoff": c.backoff}
            for c in self.containers}
        self.state.save()

    def _will_restart(self, c: Container) -> bool:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        return policy == "Always" or (policy == "OnFailure" and c.view.exit_code != 0)

    async def _step(self) -> None:
        t = time.monotonic()
        for c in self.containers:
            if c.proc is None and (c.view.state != "terminated" or self._will_restart(c)) and t >= c.next_start:
                self._start(c)
        self.view.will_restart = any(c.proc is not None or self._will_restart(c) for c in self.containers)
        await self._report()

    def _start(self, c: Container) -> None:
        try:
            env = environment(self.pod, c.spec, self.node, self.view.pod_ip, self.host_ip)
            cmd = argv(c.spec, env)
            proc = process.start(self.netns, cmd, env, c.spec.get("workingDir"), self.state.log_path(c.spec["name"]))
        except (SpecError, OSError) as err:
            c.view.state, c.view.reason, c.view.message = "waiting", "CreateContainerError", str(err)
            c.next_start = time.monotonic() + 5
            return
        if c.view.started_at:  # it ran before: this is a restart
            c.view.restart_count += 1
        c.proc = proc
        c.view.state, c.view.reason, c.view.message = "running", "", ""
        c.view.started_at = now()
        c.view.container_id = f"nodeagent://{proc.pid}"
        c.view.ready = False
        c.waiter = asyncio.create_task(self._watch(c, proc))
        self._start_probes(c)
        self._save_containers()
        log.info("pod %s: started container %s (pid %d): %s", self.key, c.spec["name"], proc.pid, " ".join(cmd))

    async def _watch(self, c: Container, proc: process.Proc) -> None:
        code = await process.wait_exit(proc)
        if c.proc is not proc:
            return
        for t in c.probe_tasks:
            t.cancel()
        c.probe_tasks = []
        c.proc = None
        c.view.ready = False
        c.view.exit_code = 0 if code is None else code
        c.view.state, c.view.finished_at = "terminated", now()
        c.view.reason = "Completed" if c.view.exit_code == 0 else "Error"
        c.view.last_terminated = c.view.state_dict()["terminated"]
        # Kubernetes' crash-loop backoff: doubling from the base up to the maximum, forgotten
        # after a container has run for ten minutes.
        ran = time.monotonic() - getattr(c, "_started_mono", time.monotonic())
        c.backoff = self.backoff_base if (not c.backoff or ran > 600) else min(c.backoff * 2, self.backoff_max)
        c.next_start = time.monotonic() + c.backoff
        if self._will_restart(c) and not self._terminating():
            c.view.state, c.view.reason = "waiting", "CrashLoopBackOff"
            c.view.message = f"back-off {c.backoff:g}s restarting failed container={c.spec['name']} pod={self.pod['metadata']['name']}"
        self._save_containers()
        log.info("pod %s: container %s exited with %s", self.key, c.spec["name"], code)
        self.wake.set()

    # -- probes -----------------------------------------------------------------------------
    def _start_probes(self, c: Container, adopted: bool = False, ready: bool = False) -> None:
        c._started_mono = time.monotonic()
        spec = c.spec
        if spec.get("readinessProbe"):
            p = spec["readinessProbe"]
            c.readiness = probes.ProbeState(p.get("successThreshold", 1), p.get("failureThreshold", 3), ready)
            c.view.ready = ready
            c.probe_tasks.append(asyncio.create_task(self._probe_loop(c, p, c.readiness, "readiness", adopted)))
        else:
            c.view.ready = True
        if spec.get("livenessProbe"):
            p = spec["livenessProbe"]
            c.liveness = probes.ProbeState(1, p.get("failureThreshold", 3), True)
            c.probe_tasks.append(asyncio.create_task(self._probe_loop(c, p, c.liveness, "liveness", adopted)))

    async def _probe_once(self, c: Container, p: dict) -> tuple[bool, str]:
        timeout = float(p.get("timeoutSeconds", 1))
        try:
            if p.get("httpGet"):
                g = p["httpGet"]
                return await probes.http_get(g.get("host") or self.view.pod_ip, resolve_port(c.spec, g["port"]),
                                             g.get("path", "/"), timeout)
            if p.get("tcpSocket"):
                s = p["tcpSocket"]
                return await probes.tcp(s.get("host") or self.view.pod_ip, resolve_port(c.spec, s["port"]), timeout)
            if p.get("exec"):
                return await probes.exec_in(self.netns, p["exec"].get("command") or [], timeout)
        except SpecError as err:
            return False, str(err)
        return False, "the probe has no handler"

    async def _probe_loop(self, c: Container, p: dict, st: probes.ProbeState, kind: str, adopted: bool) -> None:
        if not adopted:
            await asyncio.sleep(float(p.get("initialDelaySeconds", 0)))
        period = float(p.get("periodSeconds", 10))
        while c.proc is not None:
            ok, msg = await self._probe_once(c, p)
            if st.record(ok, msg):
                log.info("pod %s: %s probe of %s %s%s", self.key, kind, c.spec["name"],
                         "succeeded" if st.ok else "failed", "" if st.ok else f": {msg}")
                if kind == "readiness":
                    c.view.ready = st.ok
                    self.wake.set()
                elif not st.ok and c.proc is not None:
                    # liveness failed: kill the container; the restart policy decides what next
                    grace = float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
                    asyncio.create_task(process.stop(c.proc, grace))
                    return
            await asyncio.sleep(period)

    # -- status and teardown ----------------------------------------------------------------
    async def _report(self) -> None:
        status = pod_status(self.view, now())
        comparable = {k: v for k, v in status.items() if k != "conditions"}
        conds = [(c["type"], c["status"]) for c in status["conditions"]]
        if self.last_status == (comparable, conds) or self.gone:
            return
        try:
            await self.patch_status(self.pod, status)
            self.last_status = (comparable, conds)
        except Exception as err:
            log.info("pod %s: status write failed (%s); retried on the next pass", self.key, err)

    async def _teardown(self) -> None:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        await asyncio.gather(*(process.stop(c.proc, float(grace)) for c in self.containers if c.proc))
        for c in self.containers:
            for t in c.probe_tasks:
                t.cancel()
            if c.waiter:
                c.waiter.cancel()
        if self.netns:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.sandboxes.remove, self.netns, self.uid)
        self.state.remove()
        if not self.gone:
            try:
                await self.delete_pod(self.pod)   # the final delete, with grace 0, as kubelet does
            except Exception as err:
                log.info("pod %s: final delete failed: %s", self.key, err)
        log.info("pod %s: removed", self.key)
