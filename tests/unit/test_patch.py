"""Tests for control.api.patch: RFC 7386, RFC 6902 and strategic merge patch."""

import copy
import json

import pytest

from control.api.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)

# ---------------------------------------------------------------------------
# RFC 7386 JSON merge patch (Appendix A, plus Kubernetes-flavoured cases)
# ---------------------------------------------------------------------------

MERGE_PATCH_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    # kubectl scale / label style patches
    ({"spec": {"replicas": 1, "paused": False}}, {"spec": {"replicas": 5}},
     {"spec": {"replicas": 5, "paused": False}}),
    ({"metadata": {"labels": {"app": "web", "tier": "fe"}}},
     {"metadata": {"labels": {"tier": None, "env": "prod"}}},
     {"metadata": {"labels": {"app": "web", "env": "prod"}}}),
    # lists are replaced wholesale, never merged
    ({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
     {"spec": {"containers": [{"name": "b", "image": "x"}]}},
     {"spec": {"containers": [{"name": "b", "image": "x"}]}}),
]


@pytest.mark.parametrize("original,patch,expected", MERGE_PATCH_CASES)
def test_merge_patch(original, patch, expected):
    assert apply_merge_patch(original, patch) == expected


def test_merge_patch_does_not_mutate_or_alias_inputs():
    original = {"a": {"b": [1, 2]}, "c": 1}
    patch = {"a": {"d": {"e": [3]}}, "c": None}
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    result = apply_merge_patch(original, patch)
    assert result == {"a": {"b": [1, 2], "d": {"e": [3]}}}
    assert original == before_original and patch == before_patch
    result["a"]["b"].append(99)
    result["a"]["d"]["e"].append(99)
    assert original == before_original and patch == before_patch


# ---------------------------------------------------------------------------
# RFC 6902 JSON patch
# ---------------------------------------------------------------------------

JSON_PATCH_CASES = [
    # RFC 6902 Appendix A.1 - A.8, A.10, A.11, A.14, A.16
    ("A1-add-member", {"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}],
     {"baz": "qux", "foo": "bar"}),
    ("A2-add-array-element", {"foo": ["bar", "baz"]},
     [{"op": "add", "path": "/foo/1", "value": "qux"}], {"foo": ["bar", "qux", "baz"]}),
    ("A3-remove-member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}],
     {"foo": "bar"}),
    ("A4-remove-array-element", {"foo": ["bar", "qux", "baz"]},
     [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
    ("A5-replace", {"baz": "qux", "foo": "bar"},
     [{"op": "replace", "path": "/baz", "value": "boo"}], {"baz": "boo", "foo": "bar"}),
    ("A6-move-value", {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
     [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
     {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}),
    ("A7-move-array-element", {"foo": ["all", "grass", "cows", "eat"]},
     [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
     {"foo": ["all", "cows", "eat", "grass"]}),
    ("A8-test-success", {"baz": "qux", "foo": ["a", 2, "c"]},
     [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
     {"baz": "qux", "foo": ["a", 2, "c"]}),
    ("A10-add-nested-member", {"foo": "bar"},
     [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
     {"foo": "bar", "child": {"grandchild": {}}}),
    ("A11-ignore-unknown-members", {"foo": "bar"},
     [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}], {"foo": "bar", "baz": "qux"}),
    ("A14-escape-ordering", {"/": 9, "~1": 10},
     [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("A16-add-array-value", {"foo": ["bar"]},
     [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}], {"foo": ["bar", ["abc", "def"]]}),
    # further behaviour
    ("add-replaces-existing-member", {"a": 1}, [{"op": "add", "path": "/a", "value": 2}], {"a": 2}),
    ("add-at-end-index", {"a": [1, 2]}, [{"op": "add", "path": "/a/2", "value": 3}], {"a": [1, 2, 3]}),
    ("add-at-front", {"a": [1, 2]}, [{"op": "add", "path": "/a/0", "value": 0}], {"a": [0, 1, 2]}),
    ("replace-array-element", {"a": [1, 2, 3]},
     [{"op": "replace", "path": "/a/1", "value": 9}], {"a": [1, 9, 3]}),
    ("replace-root", {"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    ("slash-escape", {"metadata": {"annotations": {}}},
     [{"op": "add", "path": "/metadata/annotations/example.com~1team", "value": "x"}],
     {"metadata": {"annotations": {"example.com/team": "x"}}}),
    ("tilde-escape", {}, [{"op": "add", "path": "/a~0b", "value": 1}], {"a~b": 1}),
    ("empty-key", {}, [{"op": "add", "path": "/", "value": 1}], {"": 1}),
    ("copy", {"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}],
     {"a": {"b": [1]}, "c": {"b": [1]}}),
    ("copy-into-array", {"a": [1, 2], "b": 7}, [{"op": "copy", "from": "/b", "path": "/a/1"}],
     {"a": [1, 7, 2], "b": 7}),
    ("move-to-same-place", {"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}),
    ("test-deep-equal-object", {"a": {"x": [1, {"y": None}]}},
     [{"op": "test", "path": "/a", "value": {"x": [1, {"y": None}]}}], {"a": {"x": [1, {"y": None}]}}),
    ("test-int-equals-float", {"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}], {"a": 1}),
    ("test-whole-document", {"a": 1}, [{"op": "test", "path": "", "value": {"a": 1}}], {"a": 1}),
    ("sequence-uses-previous-result", {"spec": {}},
     [{"op": "add", "path": "/spec/ports", "value": []},
      {"op": "add", "path": "/spec/ports/-", "value": {"port": 80}},
      {"op": "add", "path": "/spec/ports/0/name", "value": "http"}],
     {"spec": {"ports": [{"port": 80, "name": "http"}]}}),
]


@pytest.mark.parametrize("name,original,ops,expected", JSON_PATCH_CASES,
                         ids=[c[0] for c in JSON_PATCH_CASES])
def test_json_patch(name, original, ops, expected):
    assert apply_json_patch(original, ops) == expected


JSON_PATCH_ERRORS = [
    # (name, document, ops, substring expected in the error message)
    ("A9-test-failure", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}],
     "json patch op 0 (test /baz): test failed"),
    ("A12-add-to-missing-parent", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}],
     "json patch op 0 (add /baz/bat): path not found"),
    ("A15-string-vs-number", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}],
     "test failed"),
    ("test-bool-vs-int", {"a": True}, [{"op": "test", "path": "/a", "value": 1}], "test failed"),
    ("test-missing-path", {"a": 1}, [{"op": "test", "path": "/b", "value": 1}], "path not found"),
    ("replace-missing", {"spec": {}},
     [{"op": "test", "path": "/spec", "value": {}}, {"op": "add", "path": "/x", "value": 1},
      {"op": "replace", "path": "/spec/foo", "value": 1}],
     "json patch op 2 (replace /spec/foo): path not found"),
    ("remove-missing", {"a": 1}, [{"op": "remove", "path": "/b"}], "(remove /b): path not found"),
    ("remove-root", {"a": 1}, [{"op": "remove", "path": ""}], "cannot remove the whole document"),
    ("add-index-out-of-bounds", {"a": [1, 2]}, [{"op": "add", "path": "/a/3", "value": 0}],
     "array index 3 out of bounds"),
    ("remove-index-out-of-bounds", {"a": [1, 2]}, [{"op": "remove", "path": "/a/2"}],
     "array index 2 out of bounds"),
    ("replace-index-out-of-bounds", {"a": []}, [{"op": "replace", "path": "/a/0", "value": 1}],
     "array index 0 out of bounds"),
    ("remove-dash", {"a": [1]}, [{"op": "remove", "path": "/a/-"}], "invalid array index '-'"),
    ("leading-zero-index", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}],
     "invalid array index '01'"),
    ("negative-index", {"a": [1, 2]}, [{"op": "add", "path": "/a/-1", "value": 0}],
     "invalid array index '-1'"),
    ("non-numeric-index", {"a": [1, 2]}, [{"op": "replace", "path": "/a/x", "value": 0}],
     "invalid array index 'x'"),
    ("descend-into-scalar", {"a": 1}, [{"op": "add", "path": "/a/b", "value": 0}],
     "parent is not an object or array"),
    ("pointer-without-slash", {"a": 1}, [{"op": "remove", "path": "a"}], "must start with '/'"),
    ("bad-escape", {"a": 1}, [{"op": "add", "path": "/a~2", "value": 0}], "invalid '~' escape"),
    ("trailing-tilde", {"a": 1}, [{"op": "add", "path": "/a~", "value": 0}], "invalid '~' escape"),
    ("unknown-op", {"a": 1}, [{"op": "merge", "path": "/a", "value": 0}], "unknown op 'merge'"),
    ("missing-op", {"a": 1}, [{"path": "/a", "value": 0}], "missing 'op'"),
    ("missing-path", {"a": 1}, [{"op": "add", "value": 0}], "missing 'path'"),
    ("missing-value", {"a": 1}, [{"op": "add", "path": "/b"}], "missing 'value'"),
    ("missing-from", {"a": 1}, [{"op": "copy", "path": "/b"}], "missing 'from'"),
    ("move-from-missing", {"a": 1}, [{"op": "move", "from": "/x", "path": "/b"}], "path not found"),
    ("move-into-own-child", {"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}],
     "into one of its own children"),
    ("op-not-object", {"a": 1}, ["remove /a"], "json patch op 0: operation must be an object"),
    ("result-not-object", {"a": 1}, [{"op": "replace", "path": "", "value": [1]}],
     "result is not a JSON object"),
]


@pytest.mark.parametrize("name,original,ops,message", JSON_PATCH_ERRORS,
                         ids=[c[0] for c in JSON_PATCH_ERRORS])
def test_json_patch_errors(name, original, ops, message):
    before = copy.deepcopy(original)
    with pytest.raises(PatchError) as info:
        apply_json_patch(original, ops)
    assert message in str(info.value)
    assert original == before  # atomic: a failed patch leaves the input alone


def test_json_patch_error_is_value_error():
    with pytest.raises(ValueError):
        apply_json_patch({}, [{"op": "remove", "path": "/nope"}])


def test_json_patch_ops_must_be_list():
    with pytest.raises(PatchError, match="must be a list"):
        apply_json_patch({}, {"op": "add", "path": "/a", "value": 1})


def test_json_patch_does_not_mutate_or_alias_inputs():
    original = {"spec": {"containers": [{"name": "a", "env": []}]}}
    value = {"name": "X", "value": "1"}
    ops = [
        {"op": "add", "path": "/spec/containers/0/env/-", "value": value},
        {"op": "copy", "from": "/spec/containers/0", "path": "/spec/containers/-"},
    ]
    before_original, before_ops = copy.deepcopy(original), copy.deepcopy(ops)
    result = apply_json_patch(original, ops)
    assert original == before_original and ops == before_ops
    # the copy is independent of its source and of the op value
    result["spec"]["containers"][1]["env"][0]["value"] = "2"
    assert result["spec"]["containers"][0]["env"][0]["value"] == "1"
    assert value == {"name": "X", "value": "1"}


# ---------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------


def deployment(containers, **spec_extra):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
            **spec_extra,
        },
    }


def template_spec(patch_spec):
    return {"spec": {"template": {"spec": patch_spec}}}


TWO_CONTAINERS = [
    {"name": "web", "image": "nginx:1.25",
     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
     "ports": [{"containerPort": 80, "protocol": "TCP"}]},
    {"name": "sidecar", "image": "envoy:1.0"},
]


def containers_of(obj):
    return obj["spec"]["template"]["spec"]["containers"]


SMP_CASES = [
    (
        "deployment-add-env-keeps-others",
        "Deployment",
        deployment(TWO_CONTAINERS),
        template_spec({"containers": [{"name": "web", "env": [{"name": "C", "value": "3"}]}]}),
        lambda r: containers_of(r) == [
            {**TWO_CONTAINERS[0], "env": TWO_CONTAINERS[0]["env"] + [{"name": "C", "value": "3"}]},
            TWO_CONTAINERS[1],
        ],
    ),
    (
        "deployment-change-existing-env-value",
        "Deployment",
        deployment(TWO_CONTAINERS),
        template_spec({"containers": [{"name": "web", "env": [{"name": "A", "value": "one"}]}]}),
        lambda r: containers_of(r)[0]["env"] == [{"name": "A", "value": "one"}, {"name": "B", "value": "2"}],
    ),
    (
        "change-image-of-one-container-of-two",
        "Deployment",
        deployment(TWO_CONTAINERS),
        template_spec({"containers": [{"name": "sidecar", "image": "envoy:2.0"}]}),
        lambda r: containers_of(r) == [TWO_CONTAINERS[0], {"name": "sidecar", "image": "envoy:2.0"}],
    ),
    (
        "patch-delete-container",
        "Deployment",
        deployment(TWO_CONTAINERS),
        template_spec({"containers": [{"$patch": "delete", "name": "web"}]}),
        lambda r: containers_of(r) == [TWO_CONTAINERS[1]],
    ),
    (
        "new-container-appended-and-cleaned",
        "Deployment",
        deployment(TWO_CONTAINERS),
        template_spec({"containers": [{"name": "log", "image": "busybox", "args": None,
                                       "env": [{"name": "X", "value": "1"},
                                               {"$patch": "delete", "name": "Y"}]}]}),
        lambda r: containers_of(r) == TWO_CONTAINERS + [
            {"name": "log", "image": "busybox", "env": [{"name": "X", "value": "1"}]}],
    ),
    (
        "replicaset-template-volume-mounts-by-mountPath",
        "ReplicaSet",
        deployment([{"name": "c", "volumeMounts": [{"name": "v1", "mountPath": "/a"}]}]),
        template_spec({"containers": [{"name": "c", "volumeMounts": [
            {"name": "v2", "mountPath": "/a", "readOnly": True}, {"name": "v3", "mountPath": "/b"}]}]}),
        lambda r: containers_of(r)[0]["volumeMounts"] == [
            {"name": "v2", "mountPath": "/a", "readOnly": True}, {"name": "v3", "mountPath": "/b"}],
    ),
    (
        "pod-container-ports-by-containerPort",
        "Pod",
        {"kind": "Pod", "spec": {"containers": [{"name": "c", "ports": [
            {"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "https"}]}]}},
        {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 443, "name": "tls"},
                                                         {"containerPort": 9090}]}]}},
        lambda r: r["spec"]["containers"][0]["ports"] == [
            {"containerPort": 80, "name": "http"}, {"containerPort": 443, "name": "tls"},
            {"containerPort": 9090}],
    ),
    (
        "pod-volumes-and-init-containers-by-name",
        "Pod",
        {"spec": {"volumes": [{"name": "a", "emptyDir": {}}],
                  "initContainers": [{"name": "init", "image": "i:1"}]}},
        {"spec": {"volumes": [{"name": "b", "configMap": {"name": "cm"}}],
                  "initContainers": [{"name": "init", "image": "i:2"}]}},
        lambda r: r["spec"] == {"volumes": [{"name": "a", "emptyDir": {}},
                                            {"name": "b", "configMap": {"name": "cm"}}],
                                "initContainers": [{"name": "init", "image": "i:2"}]},
    ),
    (
        "service-ports-merged-by-port",
        "Service",
        {"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"},
                                               {"port": 443, "targetPort": 8443, "name": "https"}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 53, "protocol": "UDP"}]}},
        lambda r: r["spec"]["ports"] == [{"port": 80, "targetPort": 9090, "name": "http"},
                                         {"port": 443, "targetPort": 8443, "name": "https"},
                                         {"port": 53, "protocol": "UDP"}],
    ),
    (
        "service-port-delete",
        "Service",
        {"spec": {"ports": [{"port": 80}, {"port": 443}]}},
        {"spec": {"ports": [{"$patch": "delete", "port": 80}]}},
        lambda r: r["spec"]["ports"] == [{"port": 443}],
    ),
    (
        "labels-added-and-removed-via-null",
        "Pod",
        {"metadata": {"name": "p", "labels": {"app": "web", "tier": "fe"}}},
        {"metadata": {"labels": {"tier": None, "env": "prod", "absent": None}}},
        lambda r: r["metadata"] == {"name": "p", "labels": {"app": "web", "env": "prod"}},
    ),
    (
        "set-element-order",
        "Deployment",
        deployment([{"name": "a"}, {"name": "b"}, {"name": "c"}]),
        template_spec({"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}),
        lambda r: [c["name"] for c in containers_of(r)] == ["c", "a", "b"],
    ),
    (
        "set-element-order-with-new-element",
        "Deployment",
        deployment([{"name": "a"}, {"name": "b"}]),
        template_spec({"$setElementOrder/containers": [{"name": "new"}, {"name": "b"}, {"name": "a"}],
                       "containers": [{"name": "new", "image": "n"}]}),
        lambda r: containers_of(r) == [{"name": "new", "image": "n"}, {"name": "b"}, {"name": "a"}],
    ),
    (
        "set-element-order-primitive-list",
        "Pod",
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"]}},
        lambda r: r["metadata"]["finalizers"] == ["c", "b", "a"],
    ),
    (
        "delete-from-primitive-list-finalizers",
        "Pod",
        {"metadata": {"name": "p", "finalizers": ["a.io/x", "b.io/y", "c.io/z"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b.io/y", "not-there"]}},
        lambda r: r["metadata"] == {"name": "p", "finalizers": ["a.io/x", "c.io/z"]},
    ),
    (
        "delete-from-primitive-list-and-add",
        "Namespace",
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}},
        lambda r: r["metadata"]["finalizers"] == ["b", "c"],
    ),
    (
        "finalizers-union",
        "Deployment",
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["b", "c"]}},
        lambda r: r["metadata"]["finalizers"] == ["a", "b", "c"],
    ),
    (
        "node-podcidrs-union",
        "Node",
        {"spec": {"podCIDRs": ["10.0.0.0/24"]}},
        {"spec": {"podCIDRs": ["fd00::/64"]}},
        lambda r: r["spec"]["podCIDRs"] == ["10.0.0.0/24", "fd00::/64"],
    ),
    (
        "patch-replace-on-list",
        "Deployment",
        deployment(TWO_CONTAINERS),
        template_spec({"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}),
        lambda r: containers_of(r) == [{"name": "only", "image": "x"}],
    ),
    (
        "patch-replace-on-map",
        "Pod",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
        lambda r: r["metadata"]["labels"] == {"c": "3"},
    ),
    (
        "patch-delete-on-map",
        "Pod",
        {"metadata": {"annotations": {"a": "1"}}},
        {"metadata": {"annotations": {"$patch": "delete"}}},
        lambda r: r["metadata"]["annotations"] == {},
    ),
    (
        "retain-keys-strategy-switch",
        "Deployment",
        deployment([], strategy={"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        lambda r: r["spec"]["strategy"] == {"type": "Recreate"},
    ),
    (
        "retain-keys-volume-source-switch",
        "Pod",
        {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}},
        {"spec": {"volumes": [{"$retainKeys": ["configMap", "name"], "name": "v",
                               "configMap": {"name": "cm"}}]}},
        lambda r: r["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}],
    ),
    (
        "tolerations-replaced",
        "Pod",
        {"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}},
        {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}},
        lambda r: r["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}],
    ),
    (
        "primitive-list-without-strategy-replaced",
        "Deployment",
        deployment([{"name": "c", "args": ["--a", "--b"]}]),
        template_spec({"containers": [{"name": "c", "args": ["--c"]}]}),
        lambda r: containers_of(r)[0]["args"] == ["--c"],
    ),
    (
        "endpoints-subsets-replaced",
        "Endpoints",
        {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]},
        {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]},
        lambda r: r["subsets"] == [{"addresses": [{"ip": "10.0.0.2"}]}],
    ),
    (
        "endpointslice-endpoints-replaced",
        "EndpointSlice",
        {"endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]},
        {"endpoints": [{"addresses": ["10.0.0.2"]}]},
        lambda r: r == {"endpoints": [{"addresses": ["10.0.0.2"]}], "ports": [{"port": 80}]},
    ),
    (
        "unknown-kind-replaces-lists-but-merges-metadata",
        "Widget",
        {"metadata": {"finalizers": ["a"]}, "spec": {"containers": [{"name": "a"}]}},
        {"metadata": {"finalizers": ["b"]}, "spec": {"containers": [{"name": "b"}]}},
        lambda r: r == {"metadata": {"finalizers": ["a", "b"]}, "spec": {"containers": [{"name": "b"}]}},
    ),
    (
        "owner-references-by-uid",
        "ReplicaSet",
        {"metadata": {"ownerReferences": [{"uid": "u1", "kind": "Deployment", "name": "d"}]}},
        {"metadata": {"ownerReferences": [{"uid": "u1", "blockOwnerDeletion": True},
                                          {"uid": "u2", "kind": "X", "name": "x"}]}},
        lambda r: r["metadata"]["ownerReferences"] == [
            {"uid": "u1", "kind": "Deployment", "name": "d", "blockOwnerDeletion": True},
            {"uid": "u2", "kind": "X", "name": "x"}],
    ),
    (
        "pod-status-conditions-and-podips",
        "Pod",
        {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                   {"type": "PodScheduled", "status": "True"}],
                    "podIPs": [{"ip": "10.0.0.1"}],
                    "containerStatuses": [{"name": "a", "ready": False}, {"name": "b", "ready": False}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "podIPs": [{"ip": "fd00::1"}],
                    "containerStatuses": [{"name": "a", "ready": True}]}},
        lambda r: r["status"] == {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
            "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
            # containerStatuses carries no patch tags upstream: replaced
            "containerStatuses": [{"name": "a", "ready": True}]},
    ),
    (
        "node-status-conditions-and-addresses-by-type",
        "Node",
        {"status": {"conditions": [{"type": "Ready", "status": "Unknown"}],
                    "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                   {"type": "MemoryPressure", "status": "False"}],
                    "addresses": [{"type": "Hostname", "address": "n1"}]}},
        lambda r: r["status"] == {
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]},
    ),
    (
        "deployment-status-conditions-by-type",
        "Deployment",
        {"status": {"conditions": [{"type": "Available", "status": "False"},
                                   {"type": "Progressing", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}]}},
        lambda r: r["status"]["conditions"] == [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
            {"type": "Progressing", "status": "True"}],
    ),
    (
        "lease-scalar-update",
        "Lease",
        {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}},
        {"spec": {"holderIdentity": "b", "renewTime": "2024-01-01T00:00:00.000000Z"}},
        lambda r: r["spec"] == {"holderIdentity": "b", "leaseDurationSeconds": 15,
                                "renewTime": "2024-01-01T00:00:00.000000Z"},
    ),
    (
        "type-change-replaces",
        "Pod",
        {"spec": {"x": {"a": 1}}},
        {"spec": {"x": [1]}},
        lambda r: r["spec"]["x"] == [1],
    ),
]


@pytest.mark.parametrize("name,kind,original,patch,check", SMP_CASES,
                         ids=[c[0] for c in SMP_CASES])
def test_strategic_merge_patch(name, kind, original, patch, check):
    before_original, before_patch = copy.deepcopy(original), copy.deepcopy(patch)
    result = apply_strategic_merge_patch(original, patch, kind)
    assert check(result), json.dumps(result, indent=1, sort_keys=True)
    assert original == before_original, "input object was mutated"
    assert patch == before_patch, "patch was mutated"


SMP_ERRORS = [
    ("missing-merge-key", "Deployment", deployment(TWO_CONTAINERS),
     template_spec({"containers": [{"image": "x"}]}),
     "strategic merge patch at spec.template.spec.containers: element 0 is missing merge key 'name'"),
    ("scalar-in-keyed-list", "Service", {"spec": {"ports": [{"port": 80}]}},
     {"spec": {"ports": [80]}}, "element 0 must be an object"),
    ("unknown-map-directive", "Pod", {"metadata": {}},
     {"metadata": {"$patch": "merge"}}, "unknown $patch directive 'merge'"),
    ("unknown-list-directive", "Pod", {"spec": {"containers": []}},
     {"spec": {"containers": [{"$patch": "frobnicate", "name": "a"}]}}, "unknown $patch directive"),
    ("delete-without-merge-key", "Pod", {"spec": {"tolerations": [{"key": "a"}]}},
     {"spec": {"tolerations": [{"$patch": "delete", "key": "a"}]}}, "needs a list with a merge key"),
    ("bad-retain-keys", "Deployment", deployment([]),
     {"spec": {"strategy": {"$retainKeys": "type"}}}, "$retainKeys must be a list"),
    ("bad-set-element-order", "Deployment", deployment([]),
     template_spec({"$setElementOrder/containers": "a"}), "$setElementOrder must be a list"),
    ("patch-not-object", "Pod", {}, [{"op": "add"}], "must be a JSON object"),
]


@pytest.mark.parametrize("name,kind,original,patch,message", SMP_ERRORS,
                         ids=[c[0] for c in SMP_ERRORS])
def test_strategic_merge_patch_errors(name, kind, original, patch, message):
    before = copy.deepcopy(original)
    with pytest.raises(PatchError) as info:
        apply_strategic_merge_patch(original, patch, kind)
    assert message in str(info.value)
    assert original == before


def test_strategic_merge_result_does_not_alias_patch():
    patch = template_spec({"containers": [{"name": "new", "env": [{"name": "A", "value": "1"}]}]})
    result = apply_strategic_merge_patch(deployment([]), patch, "Deployment")
    containers_of(result)[0]["env"][0]["value"] = "changed"
    assert patch["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "1"


# ---------------------------------------------------------------------------
# What kubectl actually sends
# ---------------------------------------------------------------------------

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def live_deployment():
    """A Deployment as stored after a first `kubectl apply` with replicas: 2."""
    applied = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"annotations": {}, "name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"image": "nginx:1.25", "name": "web"},
                                                      {"image": "envoy:1.0", "name": "proxy"}]}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web", "namespace": "default", "uid": "0b7e5a4e-1111-2222-3333-444455556666",
            "resourceVersion": "1234", "generation": 1,
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "annotations": {"deployment.kubernetes.io/revision": "1",
                            LAST_APPLIED: json.dumps(applied, separators=(",", ":")) + "\n"},
        },
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                         "resources": {}, "terminationMessagePath": "/dev/termination-log",
                         "terminationMessagePolicy": "File"},
                        {"name": "proxy", "image": "envoy:1.0", "imagePullPolicy": "IfNotPresent",
                         "resources": {}, "terminationMessagePath": "/dev/termination-log",
                         "terminationMessagePolicy": "File"},
                    ],
                    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                    "schedulerName": "default-scheduler", "securityContext": {},
                    "terminationGracePeriodSeconds": 30,
                },
            },
        },
        "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True"}]},
    }


def test_kubectl_second_apply_changes_replicas():
    live = live_deployment()
    new_applied = json.loads(live["metadata"]["annotations"][LAST_APPLIED])
    new_applied["spec"]["replicas"] = 3
    new_annotation = json.dumps(new_applied, separators=(",", ":")) + "\n"
    # Exactly the shape kubectl apply computes from (last-applied, new config, live).
    patch = {"metadata": {"annotations": {LAST_APPLIED: new_annotation}},
             "spec": {"replicas": 3}}

    result = apply_strategic_merge_patch(live, patch, "Deployment")

    expected = live_deployment()
    expected["spec"]["replicas"] = 3
    expected["metadata"]["annotations"][LAST_APPLIED] = new_annotation
    assert result == expected
    assert result["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert live == live_deployment()


def test_kubectl_apply_image_change_with_set_element_order():
    live = live_deployment()
    patch = {
        "metadata": {"annotations": {LAST_APPLIED: "{}\n"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "proxy"}],
            "containers": [{"image": "nginx:1.26", "name": "web"}],
        }}},
    }
    result = apply_strategic_merge_patch(live, patch, "Deployment")
    web, proxy = containers_of(result)
    assert web == {**containers_of(live)[0], "image": "nginx:1.26"}
    assert proxy == containers_of(live)[1]
    assert result["spec"]["strategy"] == live["spec"]["strategy"]
    assert result["status"] == live["status"]


def test_kubectl_apply_removes_container_from_config():
    live = live_deployment()
    patch = template_spec({
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"$patch": "delete", "name": "proxy"}],
    })
    result = apply_strategic_merge_patch(live, patch, "Deployment")
    assert [c["name"] for c in containers_of(result)] == ["web"]
    assert containers_of(result)[0] == containers_of(live)[0]


def test_kubectl_label_overwrite_and_remove():
    # `kubectl label pod p tier- env=prod --overwrite`
    live = {"kind": "Pod", "metadata": {"name": "p", "labels": {"tier": "fe", "env": "dev"}}}
    patch = {"metadata": {"labels": {"env": "prod", "tier": None}}}
    assert apply_strategic_merge_patch(live, patch, "Pod")["metadata"]["labels"] == {"env": "prod"}
