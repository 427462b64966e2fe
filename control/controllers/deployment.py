"""Deployment controller: one ReplicaSet per pod template (named <deployment>-<pod-template-hash>,
the hash also a label on the RS, its selector and its pods), rolling updates within maxSurge and
maxUnavailable, Recreate, scaling (proportional during a rollout), revision history, and the
status and conditions `kubectl rollout status` reads.

The arithmetic is kube's (pkg/controller/deployment: rolling.go, sync.go, util); the pure parts
are functions here with unit tests: ``resolve_fenceposts``, ``new_rs_replicas``,
``plan_old_scale_down``, ``proportional_sizes``, ``template_hash``, ``deployment_status``.

The pod-template hash: FNV-32a over the template as canonical JSON (sorted keys) plus the
collision count, printed in decimal and spelled with Kubernetes' safe alphabet (no vowels), so it
looks and behaves like Kubernetes' (which hashes a Go dump of the struct, not JSON; the values
differ, the properties are the same).
"""
from __future__ import annotations

import copy
import logging
import math
import time

import orjson

from control.api.selectors import SelectorError, selector_from_dict
from control.client import ApiStatusError
from control.client.client import MERGE_PATCH

from .manager import (Controller, Manager, controller_ref, key_of, namespace_of, now_rfc3339,
                      owner_ref, owner_uids, parse_time)

log = logging.getLogger("nodeagent.controllers.deployment")

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
SAFE = "bcdfghjklmnpqrstvwxz2456789"

# Condition reasons, as kubectl and kube's deployment util name them.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# -- pure -----------------------------------------------------------------------------------------
def fnv32a(data: bytes, h: int = 0x811C9DC5) -> int:
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: dict, collision_count: int | None = None) -> str:
    h = fnv32a(orjson.dumps(template, option=orjson.OPT_SORT_KEYS))
    if collision_count:
        h = fnv32a(collision_count.to_bytes(4, "little"), h)
    return "".join(SAFE[ord(c) % len(SAFE)] for c in str(h))


def strip_hash(template: dict) -> dict:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels and HASH_LABEL in labels:
        del labels[HASH_LABEL]
    return t


def equal_ignore_hash(a: dict, b: dict) -> bool:
    return strip_hash(a) == strip_hash(b)


def scaled_value(value, total: int, round_up: bool) -> int:
    """An IntOrString ("25%" or 2) against ``total``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    s = str(value).strip()
    if s.endswith("%"):
        v = float(s[:-1]) * total / 100
        return int(math.ceil(v - 1e-9)) if round_up else int(math.floor(v + 1e-9))
    return int(s)


def resolve_fenceposts(max_surge, max_unavailable, desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable down; both 0 becomes unavailable 1."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(d: dict) -> int:
    spec = d["spec"]
    strat = spec.get("strategy") or {}
    replicas = int(spec.get("replicas", 1))
    if strat.get("type") != "RollingUpdate" or replicas == 0:
        return 0
    ru = strat.get("rollingUpdate") or {}
    _, unavailable = resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), replicas)
    return min(unavailable, replicas)


def max_surge(d: dict) -> int:
    spec = d["spec"]
    strat = spec.get("strategy") or {}
    if strat.get("type") != "RollingUpdate":
        return 0
    ru = strat.get("rollingUpdate") or {}
    surge, _ = resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"),
                                  int(spec.get("replicas", 1)))
    return surge


def new_rs_replicas(desired: int, surge: int, total_spec: int, new_spec: int) -> int:
    """NewRSNewReplicas for RollingUpdate: grow the new RS as far as the surge allows."""
    max_total = desired + surge
    if total_spec >= max_total:
        return new_spec
    return new_spec + min(max_total - total_spec, desired - new_spec)


def plan_old_scale_down(desired: int, unavailable: int, new_spec: int, new_available: int,
                        olds: list[tuple[str, int, int]], total_available: int) -> dict[str, int]:
    """kube's reconcileOldReplicaSets. ``olds``: (name, spec replicas, available), oldest first.
    Returns the new spec.replicas for the old RSes to change. First the old RSes' unavailable
    pods go (they hold back nothing), then available ones as far as minAvailable allows."""
    spec = {name: s for name, s, _ in olds}
    total_spec = sum(spec.values()) + new_spec
    if sum(spec.values()) == 0:
        return {}
    min_available = desired - unavailable
    new_unavailable = new_spec - new_available
    max_scaled_down = total_spec - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    out: dict[str, int] = {}
    cleaned = 0
    for name, s, avail in olds:
        if cleaned >= max_scaled_down:
            break
        if s == 0 or avail >= s:
            continue
        n = min(max_scaled_down - cleaned, s - avail)
        spec[name] = out[name] = s - n
        cleaned += n
    # scaleDownOldReplicaSetsForRollingUpdate
    if total_available > min_available:
        todo = total_available - min_available
        done = 0
        for name, _, _ in olds:
            if done >= todo:
                break
            s = spec[name]
            if s == 0:
                continue
            n = min(s, todo - done)
            spec[name] = out[name] = s - n
            done += n
    return out


def proportional_sizes(desired: int, surge: int, rses: list[dict], status_replicas: int) -> dict[str, int]:
    """kube's proportional scaling of several active RSes when the deployment is resized
    mid-rollout: each RS keeps its share of the new total (max-replicas annotation as the old
    total), leftovers go to the largest (scaling up: newest largest first)."""
    def spec_of(rs):
        return int(rs["spec"].get("replicas", 0))
    total = sum(spec_of(rs) for rs in rses)
    allowed = desired + surge if desired > 0 else 0
    to_add = allowed - total
    if to_add == 0:
        return {rs["metadata"]["name"]: spec_of(rs) for rs in rses}
    created = lambda rs: parse_time(rs["metadata"].get("creationTimestamp")) or 0.0
    if to_add > 0:
        order = sorted(rses, key=lambda rs: (-spec_of(rs), -created(rs)))
    else:
        order = sorted(rses, key=lambda rs: (-spec_of(rs), created(rs)))
    sizes: dict[str, int] = {}
    added = 0
    for rs in order:
        s = spec_of(rs)
        prop = 0
        if s and to_add != added:
            if desired == 0:
                fraction = -s
            else:
                ann = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS)
                annotated = int(ann) if ann and ann.isdigit() else status_replicas
                fraction = int(math.floor(s * (desired + surge) / annotated + 0.5)) - s if annotated else 0
            allowed_left = to_add - added
            prop = min(fraction, allowed_left) if to_add > 0 else max(fraction, allowed_left)
        sizes[rs["metadata"]["name"]] = s + prop
        added += prop
    first = order[0]["metadata"]["name"]
    sizes[first] = max(sizes[first] + (to_add - added), 0)
    return sizes


def set_condition(conds: list[dict], new: dict) -> list[dict]:
    """SetDeploymentCondition: same status and reason keeps the transition time and is not
    rewritten unless the message changed."""
    out = [c for c in conds if c.get("type") != new["type"]]
    cur = next((c for c in conds if c.get("type") == new["type"]), None)
    if cur is not None and cur.get("status") == new["status"]:
        if cur.get("reason") == new["reason"] and cur.get("message") == new.get("message"):
            return conds
        new = {**new, "lastTransitionTime": cur.get("lastTransitionTime") or new["lastTransitionTime"]}
    return out + [new]


def make_condition(ctype: str, status: str, reason: str, message: str) -> dict:
    now = now_rfc3339()
    return {"type": ctype, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


def complete(d: dict, st: dict) -> bool:
    want = int(d["spec"].get("replicas", 1))
    return (st.get("updatedReplicas", 0) == want and st.get("replicas", 0) == want
            and st.get("availableReplicas", 0) == want
            and st.get("observedGeneration", 0) >= d["metadata"].get("generation", 0))


def progressing(old: dict, new: dict) -> bool:
    old_old = old.get("replicas", 0) - old.get("updatedReplicas", 0)
    new_old = new.get("replicas", 0) - new.get("updatedReplicas", 0)
    return (new.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or new_old < old_old
            or new.get("readyReplicas", 0) > old.get("readyReplicas", 0)
            or new.get("availableReplicas", 0) > old.get("availableReplicas", 0))


def deployment_status(d: dict, new_rs: dict | None, all_rs: list[dict], now: float | None = None) -> dict:
    """Counts and the Available condition (calculateStatus); Progressing is added by
    ``rollout_conditions``."""
    def s(rs, k):
        return int((rs.get("status") or {}).get(k, 0) or 0)
    want = int(d["spec"].get("replicas", 1))
    available = sum(s(rs, "availableReplicas") for rs in all_rs)
    st = {"observedGeneration": d["metadata"].get("generation", 0),
          "replicas": sum(s(rs, "replicas") for rs in all_rs),
          "updatedReplicas": s(new_rs, "replicas") if new_rs else 0,
          "readyReplicas": sum(s(rs, "readyReplicas") for rs in all_rs),
          "availableReplicas": available,
          "unavailableReplicas": max(sum(int(rs["spec"].get("replicas", 0)) for rs in all_rs) - available, 0)}
    cc = (d.get("status") or {}).get("collisionCount")
    if cc is not None:
        st["collisionCount"] = cc
    conds = list((d.get("status") or {}).get("conditions") or [])
    if available >= want - max_unavailable(d):
        conds = set_condition(conds, make_condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."))
    else:
        conds = set_condition(conds, make_condition("Available", "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability."))
    st["conditions"] = conds
    return st


def rollout_conditions(d: dict, new_rs: dict | None, st: dict, now: float | None = None) -> dict:
    """syncRolloutStatus: the Progressing condition."""
    deadline = d["spec"].get("progressDeadlineSeconds")
    conds = st.get("conditions") or []
    if deadline is None:
        st["conditions"] = [c for c in conds if c.get("type") != "Progressing"]
        return st
    cur = next((c for c in conds if c.get("type") == "Progressing"), None)
    if st.get("replicas") == st.get("updatedReplicas") and cur is not None and cur.get("reason") == NEW_RS_AVAILABLE:
        return st
    name = d["metadata"]["name"]
    rs_name = new_rs["metadata"]["name"] if new_rs else None
    if complete(d, st):
        msg = f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name else f'Deployment "{name}" has successfully progressed.'
        st["conditions"] = set_condition(conds, make_condition("Progressing", "True", NEW_RS_AVAILABLE, msg))
    elif progressing(d.get("status") or {}, st):
        msg = f'ReplicaSet "{rs_name}" is progressing.' if rs_name else f'Deployment "{name}" is progressing.'
        new = make_condition("Progressing", "True", RS_UPDATED, msg)
        if cur is not None and cur.get("status") == "True":
            new["lastTransitionTime"] = cur.get("lastTransitionTime") or new["lastTransitionTime"]
        st["conditions"] = [c for c in conds if c.get("type") != "Progressing"] + [new]
    elif cur is not None and cur.get("reason") not in (NEW_RS_AVAILABLE, TIMED_OUT) and cur.get("status") == "True":
        last = parse_time(cur.get("lastUpdateTime")) or 0.0
        if last + int(deadline) < (now or time.time()):
            msg = f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name else f'Deployment "{name}" has timed out progressing.'
            st["conditions"] = set_condition(conds, make_condition("Progressing", "False", TIMED_OUT, msg))
    return st


def revision_of(rs: dict) -> int:
    v = (rs["metadata"].get("annotations") or {}).get(REVISION, "0")
    return int(v) if v.isdigit() else 0


def created_at(rs: dict) -> tuple:
    return (parse_time(rs["metadata"].get("creationTimestamp")) or 0.0, rs["metadata"]["name"])


def available(rs: dict) -> int:
    """Available pods an RS can be counted on for: its status, but never more than its
    spec.replicas. Right after a scale-down the status still counts pods the RS is about to
    delete; trusting it would let the next sync scale down again below maxUnavailable."""
    return min(int((rs.get("status") or {}).get("availableReplicas", 0) or 0), int(rs["spec"].get("replicas", 0)))


def is_active(rs: dict) -> bool:
    return int(rs["spec"].get("replicas", 0)) > 0


# -- the controller -------------------------------------------------------------------------------
class DeploymentController(Controller):
    name = "deployment"
    workers = 4

    def __init__(self, manager: Manager):
        super().__init__(manager)
        self._pending_conditions: dict = {}

    def register(self) -> None:
        self.deploys = self.mgr.cache("deployments")
        self.rs = self.mgr.cache("replicasets")
        self.pods = self.mgr.cache("pods")
        self.deploys.add_index("namespace", namespace_of)
        self.rs.add_index("namespace", namespace_of)
        self.pods.add_index("owner", owner_uids)
        self.mgr.subscribe("deployments", lambda t, o, old: self.queue.add(key_of(o)))
        self.mgr.subscribe("replicasets", self.on_rs)
        self.mgr.subscribe("pods", self.on_pod)

    async def started(self) -> None:
        for d in self.deploys.list():
            self.queue.add(key_of(d))

    def _owner_deployment(self, rs: dict) -> None:
        ref = controller_ref(rs)
        ns = rs["metadata"].get("namespace", "")
        if ref is not None:
            if ref.get("kind") == "Deployment":
                d = self.deploys.get(ns, ref.get("name", ""))
                if d is not None and d["metadata"]["uid"] == ref.get("uid"):
                    self.queue.add(key_of(d))
            return
        labels = rs["metadata"].get("labels") or {}
        for d in self.deploys.by_index("namespace", ns):
            sel = _selector(d)
            if sel is not None and not sel.empty and sel.matches(labels):
                self.queue.add(key_of(d))

    def on_rs(self, etype: str, obj: dict, old: dict | None) -> None:
        self._owner_deployment(obj)
        if old is not None and controller_ref(old) != controller_ref(obj):
            self._owner_deployment(old)

    def on_pod(self, etype: str, obj: dict, old: dict | None) -> None:
        # Recreate waits for old pods to be gone: a deleted pod may unblock it.
        if etype != "DELETED":
            return
        ref = controller_ref(obj)
        if ref and ref.get("kind") == "ReplicaSet":
            rs = self.rs.get(obj["metadata"].get("namespace", ""), ref.get("name", ""))
            if rs is not None:
                self._owner_deployment(rs)

    # -- sync ---------------------------------------------------------------------------------
    async def sync(self, key) -> None:
        ns, name = key
        d = self.deploys.get(ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        sel = _selector(d)
        if sel is None or sel.empty:
            return
        rses = await self.claim_replicasets(d, sel)
        new_rs, olds = self.split(d, rses)
        if d["spec"].get("paused"):
            await self.sync_scale(d, new_rs, olds)
            await self.write_status(d, new_rs, olds)
            return
        if self.is_scaling_event(d, new_rs, olds):
            await self.sync_scale(d, new_rs, olds)
            await self.write_status(d, new_rs, olds)
            return
        if ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "Recreate":
            await self.rollout_recreate(d, new_rs, olds)
        else:
            await self.rollout_rolling(d, new_rs, olds)

    def split(self, d: dict, rses: list[dict]) -> tuple[dict | None, list[dict]]:
        tmpl = d["spec"]["template"]
        matching = sorted((rs for rs in rses if equal_ignore_hash(rs["spec"].get("template") or {}, tmpl)),
                          key=created_at)
        new_rs = matching[0] if matching else None
        olds = sorted((rs for rs in rses if rs is not new_rs), key=created_at)
        return new_rs, olds

    async def claim_replicasets(self, d: dict, sel) -> list[dict]:
        uid = d["metadata"]["uid"]
        out = []
        for rs in self.rs.by_index("namespace", d["metadata"].get("namespace", "")):
            ref = controller_ref(rs)
            matches = sel.matches(rs["metadata"].get("labels") or {})
            if ref is not None and ref.get("uid") == uid:
                if matches:
                    out.append(rs)
                else:
                    await self._patch_rs_owner(rs, [r for r in rs["metadata"].get("ownerReferences") or []
                                                    if r.get("uid") != uid])
            elif ref is None and matches and not rs["metadata"].get("deletionTimestamp"):
                got = await self._patch_rs_owner(rs, list(rs["metadata"].get("ownerReferences") or [])
                                                 + [owner_ref(d, "Deployment", "apps/v1")])
                if got is not None:
                    out.append(got)
        return out

    async def _patch_rs_owner(self, rs: dict, refs: list[dict]) -> dict | None:
        m = rs["metadata"]
        patch = {"metadata": {"ownerReferences": refs, "resourceVersion": m["resourceVersion"]}}
        try:
            out = await self.client.patch("apps/v1", "replicasets", m["namespace"], m["name"], patch,
                                          content_type=MERGE_PATCH)
        except ApiStatusError as err:
            if err.code in (404, 409):
                return None
            raise
        self.rs.observe(out)
        return out

    # -- replica set writes -------------------------------------------------------------------
    def _annotations(self, d: dict, rs: dict, revision: int | None = None) -> dict:
        ann = dict(rs["metadata"].get("annotations") or {})
        want = int(d["spec"].get("replicas", 1))
        ann[DESIRED] = str(want)
        ann[MAX_REPLICAS] = str(want + max_surge(d))
        if revision is not None:
            ann[REVISION] = str(revision)
        return ann

    async def scale_rs(self, d: dict, rs: dict, replicas: int) -> dict:
        ann = self._annotations(d, rs)
        if int(rs["spec"].get("replicas", 0)) == replicas and ann == (rs["metadata"].get("annotations") or {}):
            return rs
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        new["metadata"]["annotations"] = ann
        out = await self.client.update("apps/v1", "replicasets", rs["metadata"]["namespace"], new)
        self.rs.observe(out)
        log.info("deployment %s/%s: scaled replica set %s to %d", d["metadata"]["namespace"],
                 d["metadata"]["name"], rs["metadata"]["name"], replicas)
        return out

    async def create_new_rs(self, d: dict, olds: list[dict], replicas: int) -> dict:
        ns = d["metadata"]["namespace"]
        revision = max((revision_of(rs) for rs in olds), default=0) + 1
        collisions = (d.get("status") or {}).get("collisionCount")
        for _ in range(10):
            h = template_hash(d["spec"]["template"], collisions)
            tmpl = copy.deepcopy(d["spec"]["template"])
            tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
            sel = copy.deepcopy(d["spec"]["selector"])
            sel.setdefault("matchLabels", {})[HASH_LABEL] = h
            body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": f"{d['metadata']['name']}-{h}", "namespace": ns,
                                 "labels": tmpl["metadata"]["labels"],
                                 "ownerReferences": [owner_ref(d, "Deployment", "apps/v1")]},
                    "spec": {"replicas": replicas, "minReadySeconds": int(d["spec"].get("minReadySeconds") or 0),
                             "selector": sel, "template": tmpl}}
            body["metadata"]["annotations"] = self._annotations(d, body, revision)
            try:
                out = await self.client.create("apps/v1", "replicasets", ns, body)
            except ApiStatusError as err:
                if err.code != 409:
                    raise
                existing = await self.client.get("apps/v1", "replicasets", ns, body["metadata"]["name"])
                ref = controller_ref(existing)
                if ref and ref.get("uid") == d["metadata"]["uid"] and \
                        equal_ignore_hash(existing["spec"].get("template") or {}, d["spec"]["template"]):
                    self.rs.observe(existing)
                    return existing
                collisions = (collisions or 0) + 1  # a hash collision: another template has this name
                await self._set_collision_count(d, collisions)
                continue
            self.rs.observe(out)
            log.info("deployment %s/%s: created replica set %s (revision %d)", ns, d["metadata"]["name"],
                     out["metadata"]["name"], revision)
            await self._annotate_revision(d, revision)
            conds = set_condition(list((d.get("status") or {}).get("conditions") or []),
                                  make_condition("Progressing", "True", NEW_RS_CREATED,
                                                 f'Created new replica set "{out["metadata"]["name"]}"'))
            self._pending_conditions[key_of(d)] = conds
            return out
        raise RuntimeError("too many pod-template hash collisions")

    async def _set_collision_count(self, d: dict, n: int) -> None:
        new = {**d, "status": {**(d.get("status") or {}), "collisionCount": n}}
        out = await self.client.update("apps/v1", "deployments", d["metadata"]["namespace"], new, sub="status")
        self.deploys.observe(out)
        d["status"] = out.get("status")

    async def _annotate_revision(self, d: dict, revision: int) -> None:
        if (d["metadata"].get("annotations") or {}).get(REVISION) == str(revision):
            return
        patch = {"metadata": {"annotations": {REVISION: str(revision)}}}
        try:
            out = await self.client.patch("apps/v1", "deployments", d["metadata"]["namespace"], d["metadata"]["name"],
                                          patch, content_type=MERGE_PATCH)
            self.deploys.observe(out)
        except ApiStatusError as err:
            if err.code != 404:
                raise

    async def ensure_new_rs(self, d: dict, new_rs: dict | None, olds: list[dict], replicas_if_new: int) -> dict:
        if new_rs is None:
            return await self.create_new_rs(d, olds, replicas_if_new)
        # Keep the new RS's revision the newest and its annotations current.
        revision = max([revision_of(rs) for rs in olds] + [0]) + 1
        rev = revision_of(new_rs) if revision_of(new_rs) >= revision else revision
        ann = self._annotations(d, new_rs, rev)
        if ann != (new_rs["metadata"].get("annotations") or {}) or \
                int(new_rs["spec"].get("minReadySeconds") or 0) != int(d["spec"].get("minReadySeconds") or 0):
            new = copy.deepcopy(new_rs)
            new["metadata"]["annotations"] = ann
            new["spec"]["minReadySeconds"] = int(d["spec"].get("minReadySeconds") or 0)
            new_rs = await self.client.update("apps/v1", "replicasets", new["metadata"]["namespace"], new)
            self.rs.observe(new_rs)
        await self._annotate_revision(d, rev)
        cur = next((c for c in (d.get("status") or {}).get("conditions") or [] if c.get("type") == "Progressing"), None)
        if cur is None:
            self._pending_conditions[key_of(d)] = set_condition(
                list((d.get("status") or {}).get("conditions") or []),
                make_condition("Progressing", "True", FOUND_NEW_RS, f'Found new replica set "{new_rs["metadata"]["name"]}"'))
        return new_rs

    # -- strategies ---------------------------------------------------------------------------
    def is_scaling_event(self, d: dict, new_rs: dict | None, olds: list[dict]) -> bool:
        want = str(int(d["spec"].get("replicas", 1)))
        for rs in [r for r in olds + ([new_rs] if new_rs else []) if is_active(r)]:
            v = (rs["metadata"].get("annotations") or {}).get(DESIRED)
            if v is not None and v != want:
                return True
        return False

    async def sync_scale(self, d: dict, new_rs: dict | None, olds: list[dict]) -> None:
        want = int(d["spec"].get("replicas", 1))
        active = [rs for rs in olds + ([new_rs] if new_rs else []) if is_active(rs)]
        if len(active) <= 1:
            target = active[0] if active else (new_rs or (sorted(olds, key=created_at)[-1] if olds else None))
            if target is not None:
                await self.scale_rs(d, target, want)
            return
        if new_rs is not None and int(new_rs["spec"].get("replicas", 0)) == want and \
                (new_rs.get("status") or {}).get("availableReplicas", 0) == want:
            for rs in olds:
                if is_active(rs):
                    await self.scale_rs(d, rs, 0)
            return
        if ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") != "RollingUpdate":
            return
        sizes = proportional_sizes(want, max_surge(d), active, int((d.get("status") or {}).get("replicas", 0)))
        for rs in active:
            await self.scale_rs(d, rs, sizes[rs["metadata"]["name"]])

    async def rollout_rolling(self, d: dict, new_rs: dict | None, olds: list[dict]) -> None:
        want = int(d["spec"].get("replicas", 1))
        surge = max_surge(d)
        total = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        first = new_rs_replicas(want, surge, total, 0) if new_rs is None else 0
        new_rs = await self.ensure_new_rs(d, new_rs, olds, first)
        # scale up the new RS as far as maxSurge allows
        new_spec = int(new_rs["spec"].get("replicas", 0))
        if new_spec != want:
            target = want if new_spec > want else new_rs_replicas(want, surge, total + new_spec, new_spec)
            if target != new_spec:
                new_rs = await self.scale_rs(d, new_rs, target)
                await self.write_status(d, new_rs, olds)
                return
        # scale down the old ones as far as maxUnavailable allows
        plan = plan_old_scale_down(
            want, max_unavailable(d), int(new_rs["spec"].get("replicas", 0)), available(new_rs),
            [(rs["metadata"]["name"], int(rs["spec"].get("replicas", 0)), available(rs)) for rs in olds],
            sum(available(rs) for rs in olds + [new_rs]))
        if plan:
            by_name = {rs["metadata"]["name"]: rs for rs in olds}
            olds = [await self.scale_rs(d, by_name[n], r) if n in plan else by_name[n]
                    for n, r in ((rs["metadata"]["name"], plan.get(rs["metadata"]["name"])) for rs in olds)]
            await self.write_status(d, new_rs, olds)
            return
        # keep the annotations of the new RS current
        new_rs = await self.scale_rs(d, new_rs, int(new_rs["spec"].get("replicas", 0)))
        st = await self.write_status(d, new_rs, olds)
        if complete(d, st):
            await self.cleanup(d, olds)

    async def rollout_recreate(self, d: dict, new_rs: dict | None, olds: list[dict]) -> None:
        scaled = False
        for i, rs in enumerate(olds):
            if is_active(rs):
                olds[i] = await self.scale_rs(d, rs, 0)
                scaled = True
        if scaled:
            await self.write_status(d, new_rs, olds)
            return
        # wait until every pod of the old replica sets is gone
        for rs in olds:
            for p in self.pods.by_index("owner", rs["metadata"]["uid"]):
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    await self.write_status(d, new_rs, olds)
                    return
        want = int(d["spec"].get("replicas", 1))
        new_rs = await self.ensure_new_rs(d, new_rs, olds, want)
        new_rs = await self.scale_rs(d, new_rs, want)
        st = await self.write_status(d, new_rs, olds)
        if complete(d, st):
            await self.cleanup(d, olds)

    async def cleanup(self, d: dict, olds: list[dict]) -> None:
        limit = d["spec"].get("revisionHistoryLimit")
        if limit is None:
            return
        cleanable = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
        diff = len(cleanable) - int(limit)
        if diff <= 0:
            return
        for rs in sorted(cleanable, key=lambda r: (revision_of(r), created_at(r)))[:diff]:
            st = rs.get("status") or {}
            if st.get("replicas", 0) or int(rs["spec"].get("replicas", 0)) or \
                    rs["metadata"].get("generation", 0) > st.get("observedGeneration", 0):
                continue
            try:
                await self.client.delete("apps/v1", "replicasets", rs["metadata"]["namespace"], rs["metadata"]["name"],
                                         preconditions={"uid": rs["metadata"]["uid"]}, propagation="Background")
                self.rs.observe_deleted(rs)
            except ApiStatusError as err:
                if err.code not in (404, 409):
                    raise

    # -- status -------------------------------------------------------------------------------
    async def write_status(self, d: dict, new_rs: dict | None, olds: list[dict]) -> dict:
        k = key_of(d)
        base = d
        pending = self._pending_conditions.pop(k, None)
        if pending is not None:
            base = {**d, "status": {**(d.get("status") or {}), "conditions": pending}}
        all_rs = olds + ([new_rs] if new_rs else [])
        st = deployment_status(base, new_rs, all_rs)
        if d["spec"].get("paused"):
            st["conditions"] = set_condition(st["conditions"], make_condition(
                "Progressing", "Unknown", PAUSED, "Deployment is paused"))
        else:
            cur = next((c for c in st["conditions"] if c.get("type") == "Progressing"), None)
            if cur is not None and cur.get("reason") == PAUSED:
                st["conditions"] = set_condition(st["conditions"], make_condition(
                    "Progressing", "Unknown", RESUMED, "Deployment is resumed"))
            st = rollout_conditions(base, new_rs, st)
        # Not complete with a progress deadline: look again when it would expire.
        deadline = d["spec"].get("progressDeadlineSeconds")
        if deadline is not None and not complete(d, st) and not d["spec"].get("paused"):
            cur = next((c for c in st["conditions"] if c.get("type") == "Progressing"), None)
            if cur is not None and cur.get("reason") not in (TIMED_OUT, NEW_RS_AVAILABLE):
                last = parse_time(cur.get("lastUpdateTime")) or time.time()
                self.queue.add_after(k, max(last + int(deadline) - time.time(), 0) + 1)
        latest = self.deploys.get(d["metadata"]["namespace"], d["metadata"]["name"]) or d
        if latest["metadata"].get("uid") != d["metadata"].get("uid"):
            return st
        if st == (latest.get("status") or {}):
            return st
        new = {**latest, "status": st}  # our own annotation write may have bumped the version
        try:
            out = await self.client.update("apps/v1", "deployments", d["metadata"]["namespace"], new, sub="status")
        except ApiStatusError as err:
            if err.code == 409:
                self.deploys.observe(await self.client.get("apps/v1", "deployments", d["metadata"]["namespace"],
                                                           d["metadata"]["name"]))
            if err.code != 404:
                raise
            return st
        self.deploys.observe(out)
        return st


def _selector(obj: dict):
    try:
        return selector_from_dict((obj.get("spec") or {}).get("selector"), null_matches_nothing=True)
    except SelectorError:
        return None
