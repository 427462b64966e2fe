"""HTTP to registry. Kubernetes' URL grammar is irregular (`/api/v1/namespaces/x` is an object,
`/api/v1/namespaces/x/pods` a collection, `/api/v1/namespaces/x/status` a subresource), so one
catch-all route per API prefix parses the segments itself instead of a route per resource."""
from __future__ import annotations

from dataclasses import dataclass

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..auth.authn import USER_KEY
from ..auth.authz import ADMIN_GROUP, Attributes, authorize, verb_of
from . import errors as E
from . import tables
from .registry import Registry
from .resources import BY_PATH, Resource
from .selectors import FIELD_SELECTORS, SelectorError, parse_field_selector, parse_label_selector
from .watch import WatchRequest

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit for a request body
JSON = "application/json"
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json")


@dataclass
class Target:
    res: Resource
    ns: str = ""
    name: str = ""
    sub: str = ""


def parse_path(group: str, version: str, segs: list[str]) -> Target:
    def lookup(plural: str) -> Resource:
        res = BY_PATH.get((group, version, plural))
        if res is None:
            raise E.not_found_path()
        return res

    n = len(segs)
    if n >= 3 and segs[0] == "namespaces" and (group, version, segs[2]) in BY_PATH:
        res = lookup(segs[2])
        if not res.namespaced or n > 5:
            raise E.not_found_path()
        t = Target(res, segs[1], segs[3] if n > 3 else "", segs[4] if n > 4 else "")
    else:
        if n == 0 or n > 3:
            raise E.not_found_path()
        res = lookup(segs[0])
        t = Target(res, "", segs[1] if n > 1 else "", segs[2] if n > 2 else "")
        if res.namespaced and t.name:
            raise E.not_found_path()
    if t.sub and t.sub not in t.res.subresources:
        raise E.not_found_path()
    return t


def wants_table(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    for part in accept.split(","):
        params = {p.strip().partition("=")[0]: p.strip().partition("=")[2] for p in part.split(";")[1:]}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


async def read_body(request: Request) -> bytes:
    size = request.headers.get("content-length")
    if size and int(size) > MAX_BODY:
        raise E.too_large()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise E.too_large()
    return body


def decode_object_body(request: Request, body: bytes) -> bytes | dict:
    ctype = request.headers.get("content-type", JSON).split(";")[0].strip().lower()
    if ctype in (JSON, "", "*/*"):
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise E.bad_request(f"the body of the request could not be decoded as JSON: {err}")
        return obj
    if ctype in ("application/yaml", "application/x-yaml"):
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as err:
            raise E.bad_request(f"the body of the request could not be decoded as YAML: {err}")
    raise E.unsupported_media(ctype, [JSON, "application/yaml"])


def respond(data: bytes | dict, code: int = 200) -> Response:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return Response(body, status_code=code, media_type=JSON)


class Handler:
    def __init__(self, registry: Registry, bookmark_interval: float = 60.0,
                 max_watch_timeout: float = 1800.0):
        self.reg = registry
        self.bookmark_interval = bookmark_interval
        self.max_watch_timeout = max_watch_timeout

    async def handle(self, request: Request, group: str, version: str, path: str) -> Response:
        segs = [s for s in path.split("/") if s]
        t = parse_path(group, version, segs)
        method = request.method
        q = request.query_params
        dry_run = q.get("dryRun") == "All"
        if q.get("dryRun") and not dry_run:
            raise E.bad_request(f'unsupported dry run value "{q.get("dryRun")}": only "All" is supported')
        res, ns, name, sub = t.res, t.ns, t.name, t.sub
        if not (method == "POST" and not name):
            await self.check_access(request, t)
        if not name:  # a collection
            if method == "GET":
                return await self.list_or_watch(request, res, ns)
            if method == "POST" and (ns or not res.namespaced):
                obj = decode_object_body(request, await read_body(request))
                # Who may create depends on the new object's name (a node creates only itself).
                meta = obj.get("metadata") if isinstance(obj, dict) else None
                await self.check_access(request, t, (meta or {}).get("name", "") if isinstance(meta, dict) else "")
                rec = await self.reg.create(res, ns, obj, dry_run=dry_run)
                return self.object_response(request, res, rec.value, 201)
            if method == "DELETE":
                return await self.delete_collection(request, res, ns, dry_run)
            raise E.method_not_allowed()
        if sub == "binding":
            if method != "POST":
                raise E.method_not_allowed()
            return respond(await self.reg.bind(res, ns, name, await read_body(request)), 201)
        if sub == "scale":
            if method == "GET":
                return respond(await self.reg.get_scale(res, ns, name))
            if method == "PUT":
                return respond(await self.reg.update_scale(res, ns, name, await read_body(request), dry_run))
            if method == "PATCH":
                ctype = self.patch_type(request)
                rec = await self.reg.patch(res, ns, name, ctype, await read_body(request), subresource="scale", dry_run=dry_run)
                return respond(rec.value)
            raise E.method_not_allowed()
        if method == "GET":
            rec = await self.reg.get(res, ns, name)
            return self.object_response(request, res, rec.value)
        if method == "PUT":
            obj = decode_object_body(request, await read_body(request))
            rec = await self.reg.update(res, ns, name, obj, subresource=sub, dry_run=dry_run)
            return self.object_response(request, res, rec.value)
        if method == "PATCH":
            ctype = self.patch_type(request)
            rec = await self.reg.patch(res, ns, name, ctype, await read_body(request), subresource=sub, dry_run=dry_run)
            return self.object_response(request, res, rec.value)
        if method == "DELETE" and not sub:
            opts = self.reg.delete_options(await read_body(request), q)
            rec = await self.reg.delete(res, ns, name, opts, dry_run=dry_run)
            return self.object_response(request, res, rec.value)
        raise E.method_not_allowed()

    async def check_access(self, request: Request, t: Target, new_name: str = "") -> None:
        user = request.scope.get(USER_KEY)
        if user is None or ADMIN_GROUP in user.groups:
            return
        q = request.query_params
        selected = ""
        if t.res.plural == "pods" and q.get("fieldSelector"):
            try:
                selected = parse_field_selector(q["fieldSelector"]).exact_match("spec.nodeName") or ""
            except SelectorError as err:
                raise E.bad_request(str(err))
        verb = verb_of(request.method, bool(t.name), q.get("watch") in ("true", "1"))
        attrs = Attributes(verb, t.res.plural, t.res.group, t.ns, t.name or new_name, t.sub, selected)
        decision = authorize(user, attrs)
        if decision.allowed and decision.requires_pod_on_node:
            rec = await self.reg.store.get(t.res.key(t.ns, t.name))
            if rec is None or rec.obj["spec"].get("nodeName") != decision.requires_pod_on_node:
                decision = decision.__class__(False, f"the pod is not bound to node {decision.requires_pod_on_node!r}")
        if not decision.allowed:
            raise E.forbidden(user.name, attrs, decision.reason)

    @staticmethod
    def patch_type(request: Request) -> str:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/apply-patch+yaml":
            raise E.unsupported_media(ctype, list(PATCH_TYPES) + [" (server-side apply is not supported: use client-side `kubectl apply`)"])
        if ctype not in PATCH_TYPES:
            raise E.unsupported_media(ctype, list(PATCH_TYPES))
        return ctype

    def object_response(self, request: Request, res: Resource, value: bytes, code: int = 200) -> Response:
        if wants_table(request):
            obj = orjson.loads(value)
            include = request.query_params.get("includeObject", "Metadata")
            return respond(self.table(res, [obj], include, (obj.get("metadata") or {}).get("resourceVersion", ""), ""), code)
        return respond(value, code)

    @staticmethod
    def table(res: Resource, objs: list[dict], include: str, rv: str, cont: str) -> dict:
        try:
            return tables.render_table(res.plural, objs, include_object=include, resource_version=rv,
                                       continue_token=cont)
        except ValueError as err:
            raise E.bad_request(str(err))

    def selectors(self, request: Request, res: Resource):
        q = request.query_params
        try:
            labels = parse_label_selector(q["labelSelector"]) if q.get("labelSelector") else None
            fields = (parse_field_selector(q["fieldSelector"], FIELD_SELECTORS.get(res.plural))
                      if q.get("fieldSelector") else None)
        except SelectorError as err:
            raise E.bad_request(str(err))
        return labels, fields

    async def list_or_watch(self, request: Request, res: Resource, ns: str) -> Response:
        q = request.query_params
        labels, fields = self.selectors(request, res)
        if q.get("watch") in ("true", "1"):
            return await self.watch(request, res, ns, labels, fields)
        limit = int_param(q, "limit")
        recs, rev, cont, remaining = await self.reg.list(res, ns, labels=labels, fields=fields,
                                                         limit=limit, cont=q.get("continue", ""))
        if wants_table(request):
            table = self.table(res, [r.obj for r in recs], q.get("includeObject", "Metadata"), str(rev), cont)
            return respond(table)
        meta = b'{"resourceVersion":"' + str(rev).encode() + b'"'
        if cont:
            meta += b',"continue":"' + cont.encode() + b'"'
            if remaining:
                meta += b',"remainingItemCount":' + str(remaining).encode()
        body = (b'{"kind":"' + res.kind.encode() + b'List","apiVersion":"' + res.api_version.encode()
                + b'","metadata":' + meta + b'},"items":[' + b",".join(r.value for r in recs) + b"]}")
        return Response(body, media_type=JSON)

    async def watch(self, request: Request, res: Resource, ns: str, labels, fields) -> Response:
        q = request.query_params
        rv_param = q.get("resourceVersion", "")
        initial = None
        rv: int | None = None
        send_initial = q.get("sendInitialEvents") == "true"
        if rv_param not in ("", "0") and not send_initial:
            try:
                rv = int(rv_param)
            except ValueError:
                raise E.bad_request(f'invalid resource version "{rv_param}"')
        else:
            # Kubernetes' "any" / "most recent" start: the current state as ADDED events first.
            recs, rev, _, _ = await self.reg.list(res, ns, labels=labels, fields=fields)
            initial, rv = recs, rev
        timeout = float(int_param(q, "timeoutSeconds") or self.max_watch_timeout)
        w = WatchRequest(res, ns, rv=rv, labels=labels, fields=fields, table=wants_table(request),
                         include_object=q.get("includeObject", "Metadata"),
                         timeout=min(timeout, self.max_watch_timeout),
                         bookmarks=q.get("allowWatchBookmarks") == "true",
                         bookmark_interval=self.bookmark_interval, initial=initial,
                         initial_end_bookmark=send_initial)
        return StreamingResponse(w.stream(self.reg.store), media_type=JSON,
                                 headers={"Cache-Control": "no-cache, private"})

    async def delete_collection(self, request: Request, res: Resource, ns: str, dry_run: bool) -> Response:
        labels, fields = self.selectors(request, res)
        opts = self.reg.delete_options(await read_body(request), request.query_params)
        recs, rev, _, _ = await self.reg.list(res, ns, labels=labels, fields=fields)
        items = []
        for rec in recs:
            meta = rec.obj["metadata"]
            try:
                out = await self.reg.delete(res, meta.get("namespace", ""), meta["name"], opts, dry_run=dry_run)
                items.append(out.value)
            except E.ApiError as err:
                if err.code != 404:
                    raise
        body = (b'{"kind":"' + res.kind.encode() + b'List","apiVersion":"' + res.api_version.encode()
                + b'","metadata":{"resourceVersion":"' + str(rev).encode() + b'"},"items":['
                + b",".join(items) + b"]}")
        return Response(body, media_type=JSON)


def int_param(q, name: str) -> int:
    v = q.get(name)
    if v in (None, ""):
        return 0
    try:
        n = int(v)
    except ValueError:
        raise E.bad_request(f'{name}: invalid value "{v}": must be an integer')
    if n < 0:
        raise E.bad_request(f'{name}: invalid value "{v}": must not be negative')
    return n
