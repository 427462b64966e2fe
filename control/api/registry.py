"""Create, read, update, patch and delete of any served resource: the generic registry
(Kubernetes' pkg/registry/generic), with the per-kind pieces (defaults, validation, strategy,
allocation) plugged in. It knows nothing of HTTP; routes.py turns requests into these calls."""
from __future__ import annotations

import asyncio
import copy
import logging
from datetime import datetime, timedelta, timezone

import orjson
from pydantic import ValidationError

from ..store import (Create, Delete, KeyExists, KeyNotFound, Record, RevisionMismatch, Store,
                     Update)
from . import errors as E
from . import patch as P
from .alloc import AllocationError, Allocator
from .defaults import DEFAULTERS
from .models import Binding, DeleteOptions, Scale
from .resources import BY_KIND, Resource
from .selectors import FieldSelector, LabelSelector
from .strategy import (generate_name, prepare_create, prepare_update, scheduled_condition)
from .validation import validate, validate_service_status

log = logging.getLogger("nodeagent.apiserver")
NAMESPACES = BY_KIND["Namespace"]
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
GUARANTEED_UPDATE_TRIES = 16


def pydantic_causes(err: ValidationError) -> list[dict]:
    out = []
    for e in err.errors():
        path = ""
        for part in e["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        if e["type"] == "missing":
            out.append(E.cause(path, "Required value", "FieldValueRequired"))
        else:
            val = e.get("input")
            shown = f'"{val}"' if isinstance(val, str) else orjson.dumps(val).decode() if val is not None else "null"
            out.append(E.cause(path, f"Invalid value: {shown}: {e['msg']}"))
    return out


def name_of(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


class Registry:
    def __init__(self, store: Store, allocator: Allocator):
        self.store = store
        self.alloc = allocator
        self._tasks: set[asyncio.Task] = set()

    # -- reads ----------------------------------------------------------------------------
    async def get(self, res: Resource, ns: str, name: str) -> Record:
        rec = await self.store.get(res.key(ns, name))
        if rec is None:
            raise E.not_found(res.plural, name, res.group)
        return rec

    async def list(self, res: Resource, ns: str, *, labels: LabelSelector | None = None,
                   fields: FieldSelector | None = None, limit: int = 0, cont: str = ""
                   ) -> tuple[list[Record], int, str, int]:
        """Matching records, the list's revision, the continue token and the remaining count."""
        prefix = res.prefix(ns)
        start_after, list_rev = "", 0
        if cont:
            start_after, list_rev = decode_continue(cont, prefix)
        filtering = bool((labels and not labels.empty) or (fields and fields.requirements))
        out: list[Record] = []
        after = start_after
        while True:
            batch, rev, more = await self.store.list(prefix, start_after=after, limit=limit if not filtering else max(limit, 500) if limit else 0)
            list_rev = list_rev or rev
            for rec in batch:
                if filtering and not matches(rec, labels, fields):
                    continue
                out.append(rec)
                if limit and len(out) == limit:
                    break
            if limit and len(out) == limit:
                last = out[-1].key
                remaining = await self.store.count(prefix, start_after=last)
                if remaining == 0:
                    return out, list_rev, "", 0
                return out, list_rev, encode_continue(last, prefix, list_rev), (remaining if not filtering else 0)
            if not more or not batch:
                return out, list_rev, "", 0
            after = batch[-1].key

    # -- create ---------------------------------------------------------------------------
    def decode(self, res: Resource, body: bytes | dict, ns: str, name: str = "") -> dict:
        obj = orjson.loads(body) if isinstance(body, (bytes, bytearray)) else body
        if not isinstance(obj, dict):
            raise E.bad_request(f"the body of the request must be a JSON object describing a {res.kind}")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != res.kind:
            raise E.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")
        if api_version and api_version != res.api_version:
            raise E.bad_request(f"the API version in the data ({api_version}) does not match the "
                                f"expected API version ({res.api_version})")
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        elif not isinstance(meta, dict):
            raise E.invalid(res.kind, name, [E.cause("metadata", "Invalid value: must be an object")])
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise E.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if name and meta.get("name") and meta["name"] != name:
            raise E.bad_request("the name of the object (%s) does not match the name on the URL (%s)" % (meta["name"], name))
        if name:
            meta["name"] = name
        try:
            res.model.model_validate(obj)
        except ValidationError as err:
            raise E.invalid(res.kind, meta.get("name", "") or name, pydantic_causes(err), res.group)
        return obj

    async def _check_namespace(self, res: Resource, ns: str) -> None:
        if not res.namespaced:
            return
        rec = await self.store.get(NAMESPACES.key("", ns))
        if rec is None:
            raise E.not_found("namespaces", ns)
        if rec.obj.get("metadata", {}).get("deletionTimestamp"):
            raise E.ApiError(403, "Forbidden", f'{res.plural} "{{name}}" is forbidden: unable to create new '
                             f"content in namespace {ns} because it is being terminated")

    async def create(self, res: Resource, ns: str, body: bytes | dict, *, dry_run: bool = False) -> Record:
        obj = self.decode(res, body, ns)
        meta = obj["metadata"]
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
        name = meta.get("name", "")
        try:
            await self._check_namespace(res, ns)
        except E.ApiError as err:
            err.message = err.message.replace("{name}", name)
            raise
        DEFAULTERS[res.kind](obj)
        prepare_create(res, obj)
        causes = validate(res.kind, obj, res.namespaced)
        if causes:
            raise E.invalid(res.kind, name, causes, res.group)
        for attempt in range(8):
            attempt_obj = copy.deepcopy(obj) if res.kind == "Service" else obj
            ops, requested = [], set()
            if res.kind == "Service":
                ops, requested = await self._allocate(res, attempt_obj, None)
            if dry_run:
                return Record(res.key(ns, name), orjson.dumps(attempt_obj), 0)
            try:
                return (await self.store.commit([Create(res.key(ns, name), attempt_obj)] + ops))[0]
            except KeyExists as err:
                if err.index == 0:
                    raise E.already_exists(res.plural, name, res.group)
                self._allocation_conflict(res, name, ops[err.index - 1].key, requested)
        raise E.ApiError(500, "InternalError", "could not allocate addresses for the service: too much contention, try again", retry_after=1)

    async def _allocate(self, res: Resource, obj: dict, old: dict | None) -> tuple[list, set[str]]:
        try:
            plan = await self.alloc.plan(obj.setdefault("spec", {}), (old or {}).get("spec"))
        except AllocationError as err:
            raise E.invalid(res.kind, name_of(obj), err.causes, res.group)
        return plan.ops, plan.requested

    def _allocation_conflict(self, res: Resource, name: str, key: str, requested: set[str]) -> None:
        if key in requested:
            raise E.invalid(res.kind, name, [E.cause(self.alloc.field_of(key), self.alloc.describe(key))], res.group)
        # An address we picked was taken by a concurrent create: pick again.

    # -- update ---------------------------------------------------------------------------
    async def update(self, res: Resource, ns: str, name: str, body: bytes | dict, *,
                     subresource: str = "", dry_run: bool = False, current: Record | None = None) -> Record:
        new = self.decode(res, body, ns, name)
        rv = new["metadata"].get("resourceVersion")
        for _ in range(GUARANTEED_UPDATE_TRIES):
            cur = current or await self.get(res, ns, name)
            current = None
            if rv and rv != str(cur.mod_rev):
                raise E.conflict(res.plural, name, "the object has been modified; please apply your "
                                 "changes to the latest version and try again", res.group)
            try:
                return await self._write_update(res, ns, name, cur, copy.deepcopy(new), subresource, dry_run)
            except RevisionMismatch:
                if rv:
                    raise E.conflict(res.plural, name, "the object has been modified; please apply your "
                                     "changes to the latest version and try again", res.group)
            except KeyNotFound:
                raise E.not_found(res.plural, name, res.group)
        raise E.conflict(res.plural, name, "too many concurrent updates, try again", res.group)

    async def _write_update(self, res: Resource, ns: str, name: str, cur: Record, new: dict,
                            subresource: str, dry_run: bool) -> Record:
        old = cur.obj
        if subresource != "status":
            DEFAULTERS[res.kind](new)
        causes = prepare_update(res, old, new, subresource)
        causes += validate(res.kind, new, res.namespaced)
        if res.kind == "Service" and subresource == "status":
            causes += validate_service_status(new)
        if causes:
            raise E.invalid(res.kind, name, causes, res.group)
        old_cmp = dict(old, metadata={k: v for k, v in old["metadata"].items() if k != "resourceVersion"})
        new_cmp = dict(new, metadata={k: v for k, v in new["metadata"].items() if k != "resourceVersion"})
        if old_cmp == new_cmp:
            return cur  # a no-op update writes nothing and keeps the resourceVersion
        key = res.key(ns, name)
        if old["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            # The last finalizer is gone: finish the deletion that was waiting for it.
            ops = [Delete(key, cur.mod_rev)]
            if res.kind == "Service":
                ops += await self.alloc.release(old.get("spec") or {})
            if dry_run:
                return cur
            return (await self.store.commit(ops))[0]
        ops, requested = [], set()
        if res.kind == "Service" and subresource != "status":
            ops, requested = await self._allocate(res, new, old)
        if dry_run:
            return Record(key, orjson.dumps(new), cur.mod_rev)
        try:
            return (await self.store.commit([Update(key, new, cur.mod_rev)] + ops))[0]
        except KeyExists as err:
            self._allocation_conflict(res, name, ops[err.index - 1].key, requested)
            raise RevisionMismatch(key)  # retried by the caller with a fresh pick

    # -- patch ----------------------------------------------------------------------------
    async def patch(self, res: Resource, ns: str, name: str, content_type: str, body: bytes, *,
                    subresource: str = "", dry_run: bool = False) -> Record:
        try:
            patch = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise E.bad_request(f"error decoding patch: {err}")
        for _ in range(GUARANTEED_UPDATE_TRIES):
            cur = await self.get(res, ns, name)
            target = self._scale_of(res, cur) if subresource == "scale" else cur.obj
            patched = apply_patch(content_type, target, patch, res.kind if subresource != "scale" else "Scale")
            if subresource == "scale":
                return await self._write_scale(res, ns, name, cur, patched, dry_run)
            if not isinstance(patched, dict):
                raise E.bad_request("the patched object is not a JSON object")
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            if rv and rv != str(cur.mod_rev):
                raise E.conflict(res.plural, name, "the object has been modified; please apply your "
                                 "changes to the latest version and try again", res.group)
            obj = self.decode(res, patched, ns, name)
            try:
                return await self._write_update(res, ns, name, cur, obj, subresource, dry_run)
            except RevisionMismatch:
                if rv:
                    raise E.conflict(res.plural, name, "the object has been modified; please apply "
                                     "your changes to the latest version and try again", res.group)
            except KeyNotFound:
                raise E.not_found(res.plural, name, res.group)
        raise E.conflict(res.plural, name, "too many concurrent updates, try again", res.group)

    # -- scale ----------------------------------------------------------------------------
    def _scale_of(self, res: Resource, rec: Record) -> dict:
        obj = rec.obj
        meta = obj["metadata"]
        sel = obj["spec"].get("selector") or {}
        status = obj.get("status") or {}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "uid": meta["uid"],
                             "resourceVersion": str(rec.mod_rev), "creationTimestamp": meta["creationTimestamp"]},
                "spec": {"replicas": obj["spec"].get("replicas", 1)},
                "status": {"replicas": status.get("replicas", 0),
                           "selector": selector_string(sel)}}

    async def get_scale(self, res: Resource, ns: str, name: str) -> dict:
        return self._scale_of(res, await self.get(res, ns, name))

    async def update_scale(self, res: Resource, ns: str, name: str, body: bytes, dry_run: bool = False) -> dict:
        scale = orjson.loads(body)
        for _ in range(GUARANTEED_UPDATE_TRIES):
            cur = await self.get(res, ns, name)
            try:
                return await self._write_scale(res, ns, name, cur, scale, dry_run, as_dict=True)
            except RevisionMismatch:
                if (scale.get("metadata") or {}).get("resourceVersion"):
                    raise E.conflict(res.plural, name, "the object has been modified; please apply "
                                     "your changes to the latest version and try again", res.group)
        raise E.conflict(res.plural, name, "too many concurrent updates, try again", res.group)

    async def _write_scale(self, res: Resource, ns: str, name: str, cur: Record, scale, dry_run: bool,
                           as_dict: bool = False):
        try:
            Scale.model_validate(scale)
        except ValidationError as err:
            raise E.invalid("Scale", name, pydantic_causes(err), "autoscaling")
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != str(cur.mod_rev):
            raise E.conflict(res.plural, name, "the object has been modified; please apply your "
                             "changes to the latest version and try again", res.group)
        replicas = (scale.get("spec") or {}).get("replicas")
        if replicas is None or replicas < 0:
            raise E.invalid("Scale", name, [E.cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")], "autoscaling")
        obj = copy.deepcopy(cur.obj)
        obj["spec"]["replicas"] = replicas
        rec = await self._write_update(res, ns, name, cur, obj, "", dry_run)
        return self._scale_of(res, rec) if as_dict else Record(rec.key, orjson.dumps(self._scale_of(res, rec)), rec.mod_rev)

    # -- binding --------------------------------------------------------------------------
    async def bind(self, res: Resource, ns: str, name: str, body: bytes) -> dict:
        obj = orjson.loads(body)
        try:
            binding = Binding.model_validate(obj)
        except ValidationError as err:
            raise E.invalid("Binding", name, pydantic_causes(err))
        node = binding.target.name or ""
        if binding.target.kind not in (None, "", "Node") or not node:
            raise E.invalid("Binding", name, [E.cause("target", "Invalid value: must name a Node")])
        for _ in range(GUARANTEED_UPDATE_TRIES):
            cur = await self.get(res, ns, name)
            pod = copy.deepcopy(cur.obj)
            if binding.metadata.uid and binding.metadata.uid != pod["metadata"]["uid"]:
                # a decision made for a pod that has since been deleted and re-created
                raise E.conflict("pods", name, f"Precondition failed: UID in precondition: {binding.metadata.uid}, "
                                 f"UID in object meta: {pod['metadata']['uid']}")
            if pod["metadata"].get("deletionTimestamp"):
                raise E.conflict("pods", name, "pod is being deleted, cannot be assigned to a host")
            if pod["spec"].get("nodeName"):
                raise E.conflict("pods", name, f"pod {name} is already assigned to node \"{pod['spec']['nodeName']}\"")
            pod["spec"]["nodeName"] = node
            status = pod.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            status["conditions"] = conds + [scheduled_condition()]
            try:
                await self.store.commit([Update(cur.key, pod, cur.mod_rev)])
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
            except RevisionMismatch:
                continue
        raise E.conflict("pods", name, "too many concurrent updates, try again")

    # -- delete ---------------------------------------------------------------------------
    def delete_options(self, body: bytes, query) -> DeleteOptions:
        opts: dict = orjson.loads(body) if body and body.strip() else {}
        if not isinstance(opts, dict):
            raise E.bad_request("DeleteOptions must be a JSON object")
        if query.get("gracePeriodSeconds") is not None:
            opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        if query.get("propagationPolicy"):
            opts["propagationPolicy"] = query["propagationPolicy"]
        try:
            return DeleteOptions.model_validate(opts)
        except ValidationError as err:
            raise E.invalid("DeleteOptions", "", pydantic_causes(err))

    async def delete(self, res: Resource, ns: str, name: str, opts: DeleteOptions, *,
                     dry_run: bool = False) -> Record:
        for _ in range(GUARANTEED_UPDATE_TRIES):
            cur = await self.get(res, ns, name)
            try:
                return await self._delete_once(res, ns, name, cur, opts, dry_run)
            except RevisionMismatch:
                continue
            except KeyNotFound:
                raise E.not_found(res.plural, name, res.group)
        raise E.conflict(res.plural, name, "too many concurrent updates, try again", res.group)

    async def _delete_once(self, res: Resource, ns: str, name: str, cur: Record,
                           opts: DeleteOptions, dry_run: bool) -> Record:
        obj = cur.obj
        meta = obj["metadata"]
        pre = opts.preconditions
        if pre and pre.uid and pre.uid != meta.get("uid"):
            raise E.conflict(res.plural, name, f"Precondition failed: UID in precondition: {pre.uid}, UID in object meta: {meta.get('uid')}", res.group)
        if pre and pre.resourceVersion and pre.resourceVersion != str(cur.mod_rev):
            raise E.conflict(res.plural, name, f"Precondition failed: ResourceVersion in precondition: {pre.resourceVersion}, ResourceVersion in object meta: {cur.mod_rev}", res.group)
        new = copy.deepcopy(obj)
        nmeta = new["metadata"]
        finalizers = list(nmeta.get("finalizers") or [])
        policy = opts.propagationPolicy or ("Orphan" if opts.orphanDependents else None)
        # As in Kubernetes, Orphan and Foreground are carried out by the garbage collector,
        # which these finalizers tell what to do before the object may go.
        wanted = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy or "")
        if wanted and wanted not in finalizers:
            finalizers.append(wanted)
        grace = self._grace(res, obj, opts)
        if res.kind == "Namespace":
            return await self._delete_namespace(cur, dry_run)
        if finalizers or grace:
            if nmeta.get("deletionTimestamp") and (not grace or nmeta.get("deletionGracePeriodSeconds", 0) <= grace) \
                    and finalizers == list(nmeta.get("finalizers") or []):
                return cur  # already being deleted; nothing shortens the wait
            nmeta["finalizers"] = finalizers or None
            if not finalizers:
                nmeta.pop("finalizers")
            nmeta.setdefault("deletionTimestamp", _ts(grace))
            if grace or "deletionGracePeriodSeconds" in nmeta:
                nmeta["deletionGracePeriodSeconds"] = grace
            if dry_run:
                return Record(cur.key, orjson.dumps(new), cur.mod_rev)
            return (await self.store.commit([Update(cur.key, new, cur.mod_rev)]))[0]
        ops = [Delete(cur.key, cur.mod_rev)]
        if res.kind == "Service":
            ops += await self.alloc.release(obj.get("spec") or {})
        if dry_run:
            return cur
        return (await self.store.commit(ops))[0]

    def _grace(self, res: Resource, obj: dict, opts: DeleteOptions) -> int:
        """Graceful deletion applies to pods that a node agent runs: it stops the processes
        and then deletes the pod with grace 0. Unbound and finished pods go at once."""
        if res.kind != "Pod":
            return 0
        spec, phase = obj["spec"], (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        grace = opts.gracePeriodSeconds
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return max(grace, 0)

    async def _delete_namespace(self, cur: Record, dry_run: bool) -> Record:
        new = copy.deepcopy(cur.obj)
        name = new["metadata"]["name"]
        if name in SYSTEM_NAMESPACES:
            raise E.ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                             name=name, kind="namespaces")
        if dry_run:
            return cur
        if new["metadata"].get("deletionTimestamp"):
            return cur
        new["metadata"]["deletionTimestamp"] = _ts(0)
        new.setdefault("status", {})["phase"] = "Terminating"
        rec = (await self.store.commit([Update(cur.key, new, cur.mod_rev)]))[0]
        task = asyncio.get_running_loop().create_task(self._finalize_namespace(name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return rec

    async def _finalize_namespace(self, ns: str) -> None:
        """Kubernetes' namespace controller does this; here the API server empties the namespace
        itself, since only its own storage is involved. New content is already refused."""
        force = DeleteOptions(gracePeriodSeconds=0)
        try:
            for res in BY_KIND.values():
                if not res.namespaced:
                    continue
                recs, _, _ = await self.store.list(res.prefix(ns))
                for rec in recs:
                    try:
                        await self._delete_fully(res, ns, rec.obj["metadata"]["name"], force)
                    except E.ApiError:
                        pass
            rec = await self.store.get(NAMESPACES.key("", ns))
            if rec:
                await self.store.commit([Delete(rec.key, rec.mod_rev)])
        except Exception:  # the next delete of the namespace, or a restart, tries again
            log.exception("emptying namespace %s failed", ns)

    async def _delete_fully(self, res: Resource, ns: str, name: str, opts: DeleteOptions) -> None:
        rec = await self.delete(res, ns, name, opts)
        if rec.obj["metadata"].get("finalizers"):
            obj = copy.deepcopy(rec.obj)
            obj["metadata"].pop("finalizers")
            await self.update(res, ns, name, obj)

    async def resume_namespace_deletions(self) -> None:
        recs, _, _ = await self.store.list(NAMESPACES.prefix())
        for rec in recs:
            if rec.obj["metadata"].get("deletionTimestamp"):
                task = asyncio.get_running_loop().create_task(self._finalize_namespace(rec.obj["metadata"]["name"]))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def ensure_system_namespaces(self) -> None:
        for ns in SYSTEM_NAMESPACES:
            if await self.store.get(NAMESPACES.key("", ns)) is None:
                try:
                    await self.create(NAMESPACES, "", {"metadata": {"name": ns}})
                except E.ApiError as err:
                    if err.code != 409:
                        raise


def _ts(seconds_from_now: int) -> str:
    t = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_patch(content_type: str, obj: dict, patch, kind: str):
    try:
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise E.bad_request("a json patch must be a JSON array of operations")
            return P.apply_json_patch(obj, patch)
        if not isinstance(patch, dict):
            raise E.bad_request("a merge patch must be a JSON object")
        if content_type == "application/merge-patch+json":
            return P.apply_merge_patch(obj, patch)
        return P.apply_strategic_merge_patch(obj, patch, kind)
    except P.PatchError as err:
        raise E.ApiError(422, "Invalid", f"the patch could not be applied: {err}") from None


def matches(rec: Record, labels: LabelSelector | None, fields: FieldSelector | None) -> bool:
    obj = rec.obj
    if labels is not None and not labels.empty and not labels.matches((obj.get("metadata") or {}).get("labels")):
        return False
    return fields is None or fields.matches(obj)


def selector_string(sel: dict) -> str:
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op = e["operator"]
        if op == "In":
            parts.append(f"{e['key']} in ({','.join(e.get('values') or [])})")
        elif op == "NotIn":
            parts.append(f"{e['key']} notin ({','.join(e.get('values') or [])})")
        elif op == "Exists":
            parts.append(e["key"])
        else:
            parts.append("!" + e["key"])
    return ",".join(parts)


def encode_continue(last_key: str, prefix: str, rev: int) -> str:
    import base64
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": last_key[len(prefix):]})
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str, prefix: str) -> tuple[str, int]:
    import base64
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        start = data["start"]
        if not isinstance(start, str) or ".." in start or start.startswith("/"):
            raise ValueError(start)
        return prefix + start, int(data["rv"])
    except Exception:
        raise E.bad_request("continue key is not valid: it must come from a previous list of the same resource")
