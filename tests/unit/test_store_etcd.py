"""The etcd store's pure parts: resourceVersion splicing, key ranges, endpoints, and how a
transaction is judged after a retry. The store against a real etcd: tests/api/test_etcd_store.py."""
from __future__ import annotations

import orjson
import pytest

pytest.importorskip("aetcd")

from control.store import Create, Delete, Update  # noqa: E402
from control.store.etcd import MARK, EtcdStore, _target, encode, range_end, with_rv  # noqa: E402


def test_values_are_stored_with_a_placeholder_and_read_with_the_revision():
    obj = {"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "17"}, "spec": {"x": 1}}
    raw = encode(obj)
    assert raw.count(MARK) == 1 and b"17" not in raw
    out = with_rv(raw, 123456)
    assert orjson.loads(out) == {"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "123456"},
                                 "spec": {"x": 1}}
    assert with_rv(encode({"metadata": {}}), 5) == b'{"metadata":{"resourceVersion":"5"}}'
    assert with_rv(encode(None), 9) == b"null"  # allocation markers


def test_a_nested_resource_version_0_falls_back_to_decoding():
    # an EndpointSlice's targetRef may carry resourceVersion "0": the splice must not touch it
    obj = {"metadata": {"name": "s"}, "endpoints": [{"targetRef": {"kind": "Pod", "resourceVersion": "0"}}]}
    out = orjson.loads(with_rv(encode(obj), 42))
    assert out["metadata"]["resourceVersion"] == "42"
    assert out["endpoints"][0]["targetRef"]["resourceVersion"] == "0"
    # metadata after the nested one, in the bytes
    obj = {"spec": {"ref": {"resourceVersion": "0"}}, "metadata": {"name": "late"}}
    out = orjson.loads(with_rv(encode(obj), 7))
    assert out["metadata"]["resourceVersion"] == "7" and out["spec"]["ref"]["resourceVersion"] == "0"


def test_the_placeholder_inside_a_string_is_escaped_and_never_matched():
    sneaky = '"resourceVersion":"0"'
    obj = {"metadata": {"name": "x", "annotations": {"last-applied": sneaky}}}
    raw = encode(obj)
    assert raw.count(MARK) == 1  # the annotation's quotes are escaped in JSON
    out = orjson.loads(with_rv(raw, 3))
    assert out["metadata"]["resourceVersion"] == "3" and out["metadata"]["annotations"]["last-applied"] == sneaky


def test_values_written_elsewhere_get_their_revision_by_decoding():
    out = orjson.loads(with_rv(b'{"metadata":{"name":"old","resourceVersion":"99"}}', 100))
    assert out["metadata"] == {"name": "old", "resourceVersion": "100"}


def test_range_end_is_etcds_prefix_end():
    assert range_end(b"/registry/pods/") == b"/registry/pods0"
    assert range_end(b"a\xff") == b"b"
    assert range_end(b"\xff\xff") == b"\0"
    assert range_end(b"") == b"\0"


def test_endpoints():
    assert _target("http://10.0.0.1:2379") == ("10.0.0.1:2379", False)
    assert _target("https://etcd-a.example:12379") == ("etcd-a.example:12379", True)
    assert _target("127.0.0.1:2379") == ("127.0.0.1:2379", False)
    assert _target("https://[fd00::1]") == ("[fd00::1]:2379", True)
    with pytest.raises(ValueError):
        _target("unix:///run/etcd.sock")
    s = EtcdStore(" http://a:2379 , https://b:2379,")
    assert s.endpoints == ["http://a:2379", "https://b:2379"]
    with pytest.raises(ValueError):
        EtcdStore("")


class KV:
    def __init__(self, value: bytes, mod_revision: int, create_revision: int = 1):
        self.value, self.mod_revision, self.create_revision = value, mod_revision, create_revision


def test_a_retried_transaction_that_had_committed_is_recognised():
    s = EtcdStore("http://127.0.0.1:1")
    ops = [Create("/r/svc", {"metadata": {"name": "svc"}}), Create("/alloc/ip", None), Delete("/alloc/old")]
    values = [encode(ops[0].obj), b"null", None]
    # the first attempt committed at revision 50: our bytes are there, the deleted key is gone
    done = s._applied(ops, values, [KV(values[0], 50, 50), KV(b"null", 50, 50), None])
    assert [r.mod_rev for r in done] == [50, 50, 50]
    assert orjson.loads(done[0].value)["metadata"]["resourceVersion"] == "50"
    # someone else's value, or two different revisions, or the deleted key still there: no
    assert s._applied(ops, values, [KV(b'{"other":1}', 50), KV(b"null", 50), None]) is None
    assert s._applied(ops, values, [KV(values[0], 50), KV(b"null", 49), None]) is None
    assert s._applied(ops, values, [KV(values[0], 50), KV(b"null", 50), KV(b"{}", 3)]) is None
    # deletes alone cannot be told apart from someone else's delete
    assert s._applied([Delete("/a")], [None], [None]) is None
    upd = [Update("/r/a", {"metadata": {"name": "a"}}, 7)]
    assert s._applied(upd, [encode(upd[0].obj)], [KV(encode(upd[0].obj), 8, 2)])[0].create_rev == 2
