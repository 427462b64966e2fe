"""Kubernetes `Status` errors (apimachinery's StatusError): every failure the API answers is one."""
from __future__ import annotations

import orjson


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, *, name: str = "", kind: str = "",
                 group: str = "", causes: list[dict] | None = None, retry_after: int = 0):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details: dict = {}
        if name:
            self.details["name"] = name
        if group:
            self.details["group"] = group
        if kind:
            self.details["kind"] = kind
        if causes:
            self.details["causes"] = causes
        if retry_after:
            self.details["retryAfterSeconds"] = retry_after

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details:
            body["details"] = self.details
        return body

    def body(self) -> bytes:
        return orjson.dumps(self.status())


def qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(plural, group)} "{name}" not found',
                    name=name, kind=plural, group=group)


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f'{qualified(plural, group)} "{name}" already exists',
                    name=name, kind=plural, group=group)


def conflict(plural: str, name: str, why: str, group: str = "") -> ApiError:
    return ApiError(409, "Conflict",
                    f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {why}',
                    name=name, kind=plural, group=group)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str = "the request is too large") -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def unsupported_media(content_type: str, allowed: list[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types include: '
                    f'{", ".join(allowed)} (got "{content_type}")')


def cause(field: str, message: str, reason: str = "FieldValueInvalid") -> dict:
    return {"reason": reason, "message": message, "field": field}


def invalid(kind: str, name: str, causes: list[dict], group: str = "") -> ApiError:
    """422 with one cause per bad field, and a message that lists them as kubectl prints it."""
    parts = [f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}',
                    name=name, kind=kind, group=group, causes=causes)


def not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def forbidden(user: str, attrs, reason: str) -> ApiError:
    """403 worded as kube-apiserver words it, so that kubectl users recognise it."""
    what = f'{qualified(attrs.plural, attrs.group)} "{attrs.name}"' if attrs.name else qualified(attrs.plural, attrs.group)
    where = f' in the namespace "{attrs.namespace}"' if attrs.namespace else " at the cluster scope"
    return ApiError(403, "Forbidden",
                    f'{what} is forbidden: User "{user}" cannot {attrs.verb} resource "{attrs.resource}" '
                    f'in API group "{attrs.group}"{where}: {reason}',
                    name=attrs.name, kind=attrs.plural, group=attrs.group)
