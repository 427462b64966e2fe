"""The scheduling queue and the scheduler cache, on a fake clock."""
from __future__ import annotations

import asyncio


from control.scheduler.cache import Cache
from control.scheduler.queue import SchedulingQueue

from .test_sched_filters import pod


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def names(q: SchedulingQueue) -> list[str]:
    out = []
    while (p := q.pop_nowait()) is not None:
        out.append(p.name)
    return out


def test_priority_then_arrival_order():
    q = SchedulingQueue(clock=Clock())
    a, b, c = pod("a"), pod("b"), pod("c")
    c.priority = 10
    for p in (a, b, c):
        q.add(p)
    assert names(q) == ["c", "a", "b"]


def test_unschedulable_waits_for_an_event_or_the_timeout_then_backs_off():
    clock = Clock()
    q = SchedulingQueue(initial_backoff=1, max_backoff=4, unschedulable_timeout=30, clock=clock)
    q.add(pod("a"))
    p = q.pop_nowait()
    q.unschedulable(p.key, q.cycle)      # no cluster event since the attempt began: parked
    assert q.where[p.key] == "unschedulable" and q.pop_nowait() is None
    q.move_all()                          # a node appeared: back, after its 1 s backoff
    assert q.where[p.key] == "backoff" and q.pop_nowait() is None
    clock.t += 1.0
    assert q.pop_nowait().name == "a"
    q.unschedulable(p.key, q.cycle)
    clock.t += 29
    q.flush()
    assert q.where[p.key] == "unschedulable"
    clock.t += 1.5                        # 30 s later without any event: retried anyway
    assert q.pop_nowait().name == "a"


def test_backoff_doubles_up_to_the_cap():
    clock = Clock()
    q = SchedulingQueue(initial_backoff=1, max_backoff=4, clock=clock)
    q.add(pod("a"))
    waits = []
    for _ in range(5):
        p = q.pop_nowait()
        q.retry(p.key)
        waits.append(q.backoff_until[p.key] - clock.t)
        clock.t = q.backoff_until[p.key]
    assert waits == [1, 2, 4, 4, 4]


def test_event_during_the_attempt_sends_the_pod_to_backoff_not_to_sleep():
    clock = Clock()
    q = SchedulingQueue(initial_backoff=1, clock=clock)
    q.add(pod("a"))
    p = q.pop_nowait()
    cycle = q.cycle
    q.move_all()                          # while "a" was being tried
    q.unschedulable(p.key, cycle)
    assert q.where[p.key] == "backoff"


def test_updates_of_a_pod_in_flight_do_not_queue_it_twice_and_deletes_drop_it():
    q = SchedulingQueue(clock=Clock())
    q.add(pod("a"))
    p = q.pop_nowait()
    q.add(pod("a"))                       # a newer copy arrives while scheduling
    assert q.pop_nowait() is None and q.pods[p.key] is not p
    q.delete(p.key)
    assert p.key not in q and q.pop_nowait() is None


def test_pop_waits_for_a_pod():
    async def go():
        q = SchedulingQueue()
        task = asyncio.create_task(q.pop())
        await asyncio.sleep(0.01)
        assert not task.done()
        q.add(pod("late"))
        return (await asyncio.wait_for(task, 1)).name
    assert asyncio.run(go()) == "late"


# -- cache ------------------------------------------------------------------------------------------
def node_obj(name, cpu="2", labels=None, taints=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []},
            "status": {"allocatable": {"cpu": cpu, "memory": "1Gi", "pods": "10"},
                       "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]}}


def test_assume_confirm_forget_and_expire():
    clock = Clock()
    c = Cache(assume_ttl=30, clock=clock)
    c.set_node(node_obj("a"))
    p = pod("p", requests={"cpu": "1"})
    c.assume(p, "a")
    assert c.nodes["a"].cpu == 1000 and c.is_assumed(p.uid)
    c.forget(p.uid)
    assert c.nodes["a"].cpu == 0
    c.assume(p, "a")
    c.finish_binding(p.uid)
    bound = {**p.obj, "spec": {**p.obj["spec"], "nodeName": "a"}}
    c.add_pod(bound)                      # the watch confirms: no double counting
    assert c.nodes["a"].cpu == 1000 and not c.is_assumed(p.uid)
    q = pod("q", requests={"cpu": "500m"})
    c.assume(q, "a")
    c.finish_binding(q.uid)
    clock.t += 31
    assert c.cleanup_expired() == [q.uid] and c.nodes["a"].cpu == 1000
    c.remove_pod(p.uid)
    assert c.nodes["a"].cpu == 0 and c.nodes["a"].num_pods == 0


def test_static_generation_moves_only_when_filters_could_change():
    c = Cache()
    assert c.set_node(node_obj("a")) is True
    gen = c.static_gen
    hb = node_obj("a")
    hb["status"]["conditions"][0]["lastHeartbeatTime"] = "t2"
    assert c.set_node(hb) is False and c.static_gen == gen          # a heartbeat: nothing
    assert c.set_node(node_obj("a", cpu="4")) is True and c.static_gen == gen   # room: retry, same static
    assert c.set_node(node_obj("a", cpu="4", labels={"x": "y"})) is True and c.static_gen == gen + 1
    c.remove_node("a")
    assert c.node_list == []


def test_pods_of_unknown_nodes_are_kept_until_the_node_comes():
    c = Cache()
    p = pod("p", requests={"cpu": "1"})
    c.add_pod({**p.obj, "spec": {**p.obj["spec"], "nodeName": "later"}})
    assert c.node_list == [] and c.nodes["later"].cpu == 1000
    c.set_node(node_obj("later"))
    assert [n.name for n in c.node_list] == ["later"] and c.nodes["later"].cpu == 1000
