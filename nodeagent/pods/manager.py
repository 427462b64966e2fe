"""The pod runtime's manager: watches the pods bound to this node (the only ones a node's
credential may read), runs one PodWorker per pod, adopts what a previous run of the agent left,
and removes namespaces of pods that no longer exist."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from control.client import ApiClient, ApiStatusError, Informer

from .sandbox import Sandboxes, list_netns
from .state import PodState
from .worker import PodWorker

log = logging.getLogger("nodeagent.pods")


class PodManager:
    def __init__(self, client: ApiClient, node: str, host_ip: str, sandboxes: Sandboxes, state_dir: str, *,
                 netns_prefix: str = "nap-", backoff_base: float = 10.0, backoff_max: float = 300.0,
                 parallel: int = 4):
        self.client, self.node, self.host_ip = client, node, host_ip
        self.sandboxes, self.state_dir, self.netns_prefix = sandboxes, state_dir, netns_prefix
        self.backoff_base, self.backoff_max = backoff_base, backoff_max
        # CNI and namespace commands block: they run on a small pool so pods start in parallel
        self.executor = ThreadPoolExecutor(parallel, thread_name_prefix="pods")
        self.workers: dict[str, tuple[PodWorker, asyncio.Task]] = {}
        self.informer = Informer(client, "v1", "pods", field_selector=f"spec.nodeName={node}", handler=self.on_pod)
        self.saved: dict[str, PodState] = {}

    def on_pod(self, etype: str, pod: dict, old: dict | None) -> None:
        uid = pod["metadata"]["uid"]
        if etype == "DELETED":
            if uid in self.workers:
                self.workers[uid][0].deleted()
            return
        if uid in self.workers:
            self.workers[uid][0].update(pod)
            return
        if pod["spec"].get("nodeName") != self.node:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and uid not in self.saved and not pod["metadata"].get("deletionTimestamp"):
            return  # finished before this agent started, and nothing of it is left here
        state = self.saved.pop(uid, None) or PodState(self.state_dir, uid)
        w = PodWorker(pod, state, node=self.node, host_ip=self.host_ip, sandboxes=self.sandboxes,
                      executor=self.executor, patch_status=self.patch_status, delete_pod=self.delete_pod,
                      netns_prefix=self.netns_prefix, backoff_base=self.backoff_base, backoff_max=self.backoff_max)
        task = asyncio.get_running_loop().create_task(w.run())
        self.workers[uid] = (w, task)
        task.add_done_callback(lambda _t, uid=uid: self.workers.pop(uid, None))

    async def patch_status(self, pod: dict, status: dict) -> None:
        m = pod["metadata"]
        await self.client.patch("v1", "pods", m["namespace"], m["name"], {"status": status}, sub="status")

    async def delete_pod(self, pod: dict) -> None:
        m = pod["metadata"]
        try:
            await self.client.delete("v1", "pods", m["namespace"], m["name"], grace_period=0,
                                     preconditions={"uid": m["uid"]})
        except ApiStatusError as err:
            if err.code not in (404, 409):
                raise

    async def collect_garbage(self) -> None:
        """After the first full list: what a previous run left for pods that are gone."""
        await self.informer.synced.wait()
        live = {p["metadata"]["uid"] for p in self.informer.items()}
        loop = asyncio.get_running_loop()
        for uid, st in list(self.saved.items()):
            if uid not in live:
                log.info("removing leftovers of pod %s, which no longer exists", uid)
                from . import process
                for c in st.data.get("containers", {}).values():
                    if c.get("pid"):
                        await process.stop(process.Proc(c["pid"], c["start_ticks"]), 0)
                if st.data.get("netns"):
                    await loop.run_in_executor(self.executor, self.sandboxes.remove, st.data["netns"], uid)
                st.remove()
                self.saved.pop(uid, None)
        known = {w.netns for w, _ in self.workers.values()}
        for ns in list_netns(self.netns_prefix):
            uid = ns[len(self.netns_prefix):]
            if ns not in known and uid not in live:
                log.info("removing orphaned pod namespace %s", ns)
                await loop.run_in_executor(self.executor, self.sandboxes.remove, ns, uid)

    async def run(self) -> None:
        self.saved = PodState.load_all(self.state_dir)
        gc = asyncio.create_task(self.collect_garbage())
        try:
            await self.informer.run()
        finally:
            gc.cancel()
            for _, task in list(self.workers.values()):
                task.cancel()
