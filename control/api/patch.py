"""PATCH support: JSON merge patch, JSON patch and Kubernetes strategic merge patch.

All three entry points work on a deep copy and never mutate their inputs.
Errors are reported as PatchError (a ValueError) with a message that names the
failing operation or field path, so the API layer can return it as a 422/400.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = [
    "PatchError",
    "apply_merge_patch",
    "apply_json_patch",
    "apply_strategic_merge_patch",
    "MERGE_KEYS_BY_KIND",
    "UNION",
]


class PatchError(ValueError):
    """A patch could not be applied; the message says why and where."""


# --------------------------------------------------------------------------
# RFC 7386 JSON merge patch
# --------------------------------------------------------------------------


def apply_merge_patch(obj: dict, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch and return the new document."""
    return _merge_patch(copy.deepcopy(obj), patch)


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


# --------------------------------------------------------------------------
# RFC 6902 JSON patch (with RFC 6901 JSON pointers)
# --------------------------------------------------------------------------

_MISSING = object()


def apply_json_patch(obj: dict, ops: list) -> dict:
    """Apply an RFC 6902 patch atomically; op numbers in errors are 0-based."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc: Any = copy.deepcopy(obj)
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise PatchError(f"json patch op {index}: operation must be an object")
        label = f"json patch op {index} ({op.get('op')} {op.get('path')})"
        try:
            doc = _apply_op(doc, op)
        except PatchError as exc:
            raise PatchError(f"{label}: {exc}") from None
    if not isinstance(doc, dict):
        raise PatchError("json patch result is not a JSON object")
    return doc


def _apply_op(doc: Any, op: dict) -> Any:
    name = _required(op, "op")
    path = _parse_pointer(_required(op, "path"))
    if name == "add":
        return _add(doc, path, copy.deepcopy(_required(op, "value")))
    if name == "remove":
        return _remove(doc, path)
    if name == "replace":
        return _replace(doc, path, copy.deepcopy(_required(op, "value")))
    if name == "test":
        if not _json_equal(_get(doc, path), _required(op, "value")):
            raise PatchError("test failed: value differs")
        return doc
    if name in ("move", "copy"):
        source = _parse_pointer(_required(op, "from"))
        value = _get(doc, source)
        if name == "copy":
            return _add(doc, path, copy.deepcopy(value))
        if source == path:
            return doc
        if path[: len(source)] == source:
            raise PatchError("cannot move a value into one of its own children")
        return _add(_remove(doc, source), path, value)
    raise PatchError(f"unknown op {name!r}")


def _required(op: dict, field: str) -> Any:
    if field not in op:
        raise PatchError(f"missing {field!r}")
    return op[field]


def _parse_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str):
        raise PatchError(f"pointer {pointer!r} is not a string")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"pointer {pointer!r} must start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise PatchError(f"pointer {pointer!r} has an invalid '~' escape")
    # Order matters (RFC 6901 section 4): "~01" must become "~1", not "/".
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _list_index(container: list, token: str, allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0") or not token.isascii():
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise PatchError(f"array index {index} out of bounds (length {len(container)})")
    return index


def _child(container: Any, token: str) -> Any:
    if isinstance(container, dict):
        return container.get(token, _MISSING)
    if isinstance(container, list):
        return container[_list_index(container, token, allow_end=False)]
    return _MISSING


def _get(doc: Any, path: list[str]) -> Any:
    current = doc
    for token in path:
        current = _child(current, token)
        if current is _MISSING:
            raise PatchError("path not found")
    return current


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(parent, token, allow_end=True), value)
    else:
        raise PatchError("parent is not an object or array")
    return doc


def _replace(doc: Any, path: list[str], value: Any) -> Any:
    _get(doc, path)  # the target must exist
    if not path:
        return value
    parent = _get(doc, path[:-1])
    if isinstance(parent, list):
        parent[_list_index(parent, path[-1], allow_end=False)] = value
    else:
        parent[path[-1]] = value
    return doc


def _remove(doc: Any, path: list[str]) -> Any:
    if not path:
        raise PatchError("cannot remove the whole document")
    parent = _get(doc, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError("path not found")
        del parent[token]
    elif isinstance(parent, list):
        del parent[_list_index(parent, token, allow_end=False)]
    else:
        raise PatchError("path not found")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python ==, true is not 1 and "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# --------------------------------------------------------------------------
# Strategic merge patch: merge-key table
# --------------------------------------------------------------------------


class _Union:
    """Marks a primitive list with patchStrategy=merge: patching takes the set union."""

    def __repr__(self) -> str:
        return "UNION"


UNION = _Union()


def _prefixed(prefix: tuple, table: dict) -> dict:
    return {prefix + path: key for path, key in table.items()}


# The entries mirror the `patchStrategy:"merge" patchMergeKey:"..."` struct tags
# in k8s.io/api. A list that is absent here has no such tag and is therefore
# atomic: the patch list replaces it (e.g. tolerations, containerStatuses,
# Endpoints.subsets, EndpointSlice.endpoints, Node spec.taints).

# ObjectMeta: Finalizers is tagged merge without a key (a set of strings).
_OBJECT_META = {("finalizers",): UNION, ("ownerReferences",): "uid"}

# Container and EphemeralContainerCommon carry identical tags; ports are keyed by
# containerPort (not port as in ServicePort) because that is what the tag says.
_CONTAINER = {
    ("ports",): "containerPort",
    ("env",): "name",
    ("volumeMounts",): "mountPath",
    ("volumeDevices",): "devicePath",
}

_POD_SPEC = {
    ("containers",): "name",
    ("initContainers",): "name",
    ("ephemeralContainers",): "name",
    **_prefixed(("containers",), _CONTAINER),
    **_prefixed(("initContainers",), _CONTAINER),
    **_prefixed(("ephemeralContainers",), _CONTAINER),
    ("volumes",): "name",
    ("imagePullSecrets",): "name",
    ("hostAliases",): "ip",
    ("topologySpreadConstraints",): "topologyKey",
    ("resourceClaims",): "name",
    ("schedulingGates",): "name",
}

# Every *Condition list in core/apps status types is tagged with key "type".
_CONDITIONS = {("conditions",): "type"}

_POD_STATUS = {
    **_CONDITIONS,
    ("podIPs",): "ip",
    ("hostIPs",): "ip",
    ("resourceClaimStatuses",): "name",
}

_META = _prefixed(("metadata",), _OBJECT_META)


def _workload(template: tuple) -> dict:
    """Kinds embedding a PodTemplateSpec at `template` plus status conditions."""
    return {
        **_META,
        **_prefixed(template + ("metadata",), _OBJECT_META),
        **_prefixed(template + ("spec",), _POD_SPEC),
        **_prefixed(("status",), _CONDITIONS),
    }


MERGE_KEYS_BY_KIND: dict[str, dict[tuple, Any]] = {
    "Pod": {**_META, **_prefixed(("spec",), _POD_SPEC), **_prefixed(("status",), _POD_STATUS)},
    "Deployment": _workload(("spec", "template")),
    "ReplicaSet": _workload(("spec", "template")),
    "StatefulSet": _workload(("spec", "template")),
    "DaemonSet": _workload(("spec", "template")),
    "Job": _workload(("spec", "template")),
    # ServicePort is keyed by the service port itself.
    "Service": {**_META, ("spec", "ports"): "port", ("status", "conditions"): "type"},
    "Node": {
        **_META,
        ("spec", "podCIDRs"): UNION,
        ("status", "conditions"): "type",
        ("status", "addresses"): "type",
    },
    "Namespace": {**_META, ("status", "conditions"): "type"},
    # Endpoints.subsets and EndpointSlice endpoints/ports carry no patch tags.
    "Endpoints": _META,
    "EndpointSlice": _META,
    "Lease": _META,
}


def _merge_strategy(table: dict, path: tuple) -> Any:
    """Merge key (str), UNION, or None (replace) for the list at `path`."""
    return table.get(path)


# --------------------------------------------------------------------------
# Strategic merge patch: algorithm
# --------------------------------------------------------------------------

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PREFIX = "$deleteFromPrimitiveList/"
_ORDER_PREFIX = "$setElementOrder/"


def apply_strategic_merge_patch(obj: dict, patch: dict, kind: str) -> dict:
    """Apply a Kubernetes strategic merge patch using the merge keys of `kind`.

    Unknown kinds get only the ObjectMeta rules; all their lists are replaced.
    """
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    table = MERGE_KEYS_BY_KIND.get(kind, _META)
    return _merge_map(copy.deepcopy(obj), patch, (), table)


def _where(path: tuple) -> str:
    return "strategic merge patch at " + (".".join(path) or "<root>")


def _is_directive_key(key: str) -> bool:
    return key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith((_DELETE_PREFIX, _ORDER_PREFIX))


def _fresh(value: Any, path: tuple, table: dict) -> Any:
    """A patch value with no live counterpart: strip nulls and directives."""
    if isinstance(value, dict):
        return _merge_map({}, value, path, table)
    if isinstance(value, list):
        return _merge_list([], value, path, table)
    return value


def _merge_map(original: dict, patch: dict, path: tuple, table: dict) -> dict:
    """Merge `patch` into `original` (which is ours to mutate) and return it."""
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
        return _merge_map({}, rest, path, table)
    if directive == "delete":
        return {}
    if directive is not None:
        raise PatchError(f"{_where(path)}: unknown $patch directive {directive!r}")

    for key, values in patch.items():
        if key.startswith(_DELETE_PREFIX):
            _delete_from_primitive_list(original, key[len(_DELETE_PREFIX):], values, path)

    for key, value in patch.items():
        if _is_directive_key(key):
            continue
        child = path + (key,)
        current = original.get(key)
        if value is None:
            original.pop(key, None)
        elif isinstance(current, dict) and isinstance(value, dict):
            original[key] = _merge_map(current, value, child, table)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list(current, value, child, table)
        else:
            original[key] = _fresh(value, child, table)

    for key, order in patch.items():
        if key.startswith(_ORDER_PREFIX):
            field = key[len(_ORDER_PREFIX):]
            _set_element_order(original, field, order, path + (field,), table)
    if _RETAIN_KEYS in patch:
        _retain_keys(original, patch[_RETAIN_KEYS], path)
    return original


def _retain_keys(original: dict, keys: Any, path: tuple) -> None:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise PatchError(f"{_where(path)}: $retainKeys must be a list of strings")
    for key in [k for k in original if k not in keys]:
        del original[key]


def _delete_from_primitive_list(original: dict, field: str, values: Any, path: tuple) -> None:
    if not isinstance(values, list):
        raise PatchError(f"{_where(path + (field,))}: $deleteFromPrimitiveList must be a list")
    current = original.get(field)
    if isinstance(current, list):
        original[field] = [item for item in current if item not in values]


def _merge_list(original: list, patch: list, path: tuple, table: dict) -> list:
    strategy = _merge_strategy(table, path)
    if _has_list_directive(patch, "replace", path):
        # `$patch: replace` wins; any other directive elements are dropped.
        return [_fresh(item, path, table) for item in patch if not _is_list_directive(item)]
    if strategy is UNION:
        return _union(original, patch)
    if strategy is None:
        if _has_list_directive(patch, "delete", path):
            raise PatchError(f"{_where(path)}: $patch: delete needs a list with a merge key")
        return [_fresh(item, path, table) for item in patch]
    return _merge_keyed_list(original, patch, path, strategy, table)


def _is_list_directive(item: Any) -> bool:
    return isinstance(item, dict) and _DIRECTIVE in item


def _has_list_directive(patch: list, directive: str, path: tuple) -> bool:
    found = False
    for item in patch:
        if not _is_list_directive(item):
            continue
        if item[_DIRECTIVE] not in ("replace", "delete"):
            raise PatchError(f"{_where(path)}: unknown $patch directive {item[_DIRECTIVE]!r}")
        found = found or item[_DIRECTIVE] == directive
    return found


def _union(original: list, patch: list) -> list:
    result: list = []
    for item in original + patch:
        if item not in result:
            result.append(copy.deepcopy(item))
    return result


def _merge_keyed_list(original: list, patch: list, path: tuple, key: str, table: dict) -> list:
    for index, item in enumerate(patch):
        if not isinstance(item, dict):
            raise PatchError(f"{_where(path)}: element {index} must be an object (merged by {key!r})")
        if key not in item:
            raise PatchError(f"{_where(path)}: element {index} is missing merge key {key!r}")

    # Deletions first, as upstream does, so "delete then re-add" in one patch works.
    deleted = [item[key] for item in patch if item.get(_DIRECTIVE) == "delete"]
    result = [e for e in original if not (isinstance(e, dict) and e.get(key) in deleted)]

    for item in patch:
        if _DIRECTIVE in item:
            continue
        position = _find_by_key(result, key, item[key])
        if position is None:
            result.append(_fresh(item, path, table))
        else:
            result[position] = _merge_map(result[position], item, path, table)
    return result


def _find_by_key(items: list, key: str, value: Any) -> int | None:
    for position, element in enumerate(items):
        if isinstance(element, dict) and element.get(key) == value:
            return position
    return None


def _set_element_order(original: dict, field: str, order: Any, path: tuple, table: dict) -> None:
    """Sort the list: elements named in `order` first, in that order; others keep theirs."""
    if not isinstance(order, list):
        raise PatchError(f"{_where(path)}: $setElementOrder must be a list")
    current = original.get(field)
    if not isinstance(current, list):
        return
    key = _merge_strategy(table, path)

    def identity(element: Any) -> Any:
        if isinstance(key, str) and isinstance(element, dict):
            return element.get(key)
        return element

    wanted = [identity(entry) for entry in order]

    def rank(element: Any) -> int:
        ident = identity(element)
        for position, value in enumerate(wanted):
            if value == ident:
                return position
        return len(wanted)

    original[field] = sorted(current, key=rank)  # stable: unlisted keep relative order
