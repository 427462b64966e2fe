"""Leader election on a fake in-memory Lease API (optimistic concurrency like the real one) with
a fake clock: acquire, renew, expiry measured on the candidate's own clock, step-down."""
from __future__ import annotations

import asyncio
import copy

import pytest

from control.client import ApiStatusError
from control.leaderelection import LeaderElector, LeaseRecord, may_acquire


class FakeLeases:
    """get/create/update of one namespace's leases with resourceVersion checks."""

    def __init__(self):
        self.objs: dict[str, dict] = {}
        self.rv = 0
        self.down = False

    def _check(self):
        if self.down:
            raise OSError("connection refused")

    async def get(self, api_version, plural, ns, name):
        self._check()
        if name not in self.objs:
            raise ApiStatusError(404, {"reason": "NotFound"})
        return copy.deepcopy(self.objs[name])

    async def create(self, api_version, plural, ns, obj):
        self._check()
        name = obj["metadata"]["name"]
        if name in self.objs:
            raise ApiStatusError(409, {"reason": "AlreadyExists"})
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objs[name] = obj
        return copy.deepcopy(obj)

    async def update(self, api_version, plural, ns, obj, sub=""):
        self._check()
        name = obj["metadata"]["name"]
        cur = self.objs.get(name)
        if cur is None:
            raise ApiStatusError(404, {"reason": "NotFound"})
        if obj["metadata"].get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise ApiStatusError(409, {"reason": "Conflict"})
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.objs[name] = obj
        return copy.deepcopy(obj)


class Clock:
    t = 1000.0

    def __call__(self):
        return self.t


def elector(api, identity, clock, **kw):
    return LeaderElector(api, "lock", identity=identity, lease_duration=10, renew_deadline=6,
                         retry_period=2, clock=clock, **kw)


@pytest.mark.parametrize("holder,observed,now,ok", [
    ("", 0, 0, True), ("me", 0, 0, True), ("other", 0, 5, False), ("other", 0, 10, True), ("other", 100, 105, False),
])
def test_may_acquire(holder, observed, now, ok):
    assert may_acquire(LeaseRecord(holder, 10, None, None, 0), "me", observed, now) is ok


def test_acquire_renew_and_expiry_on_the_candidates_own_clock():
    async def go():
        api, clock = FakeLeases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.try_acquire_or_renew()               # created
        assert not await b.try_acquire_or_renew()           # held, first seen now by b
        clock.t += 9
        assert await a.try_acquire_or_renew()               # renewed: b sees a new record
        clock.t += 9
        assert not await b.try_acquire_or_renew()           # 9 s since b saw the renewal
        clock.t += 10
        assert await b.try_acquire_or_renew()               # a stopped renewing 10+ s ago on b's clock
        spec = api.objs["lock"]["spec"]
        assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1 and spec["leaseDurationSeconds"] == 10
        assert not await a.try_acquire_or_renew()
    asyncio.run(go())


def test_racing_candidates_one_wins_by_resource_version():
    async def go():
        api, clock = FakeLeases(), Clock()
        await elector(api, "old", clock).try_acquire_or_renew()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        await a.try_acquire_or_renew(), await b.try_acquire_or_renew()
        clock.t += 11
        # both read the expired lease, then both write: the second write is a 409
        orig_get = api.get
        lease = await orig_get("", "", "", "lock")

        async def stale_get(*args):
            return copy.deepcopy(lease)
        api.get = stale_get
        results = [await a.try_acquire_or_renew(), await b.try_acquire_or_renew()]
        assert results == [True, False]
    asyncio.run(go())


def test_release_lets_a_standby_take_over_at_once():
    async def go():
        api, clock = FakeLeases(), Clock()
        a, b = elector(api, "a", clock), elector(api, "b", clock)
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
        await a.release()
        assert api.objs["lock"]["spec"]["holderIdentity"] == ""
        assert await b.try_acquire_or_renew()
    asyncio.run(go())


def test_run_steps_down_when_renewal_fails_and_cancels_the_work():
    async def go():
        api = FakeLeases()
        e = LeaderElector(api, "lock", identity="a", lease_duration=0.5, renew_deadline=0.3, retry_period=0.05)
        started, cancelled = asyncio.Event(), asyncio.Event()

        async def lead():
            started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        task = asyncio.create_task(e.run(lead))
        await asyncio.wait_for(started.wait(), 2)
        assert e.leading
        api.down = True                                     # the API server goes away
        await asyncio.wait_for(cancelled.wait(), 2)
        assert not e.leading
        api.down = False                                    # back: stands again and leads again
        started.clear()
        await asyncio.wait_for(started.wait(), 3)
        assert e.transitions == 2
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert api.objs["lock"]["spec"]["holderIdentity"] == ""   # released on cancel
    asyncio.run(go())


def test_bad_timings_are_refused():
    with pytest.raises(ValueError):
        LeaderElector(FakeLeases(), "x", lease_duration=5, renew_deadline=6, retry_period=1)
