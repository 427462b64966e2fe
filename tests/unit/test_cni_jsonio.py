"""cni.jsonio against the standard json module it replaces on the plugin's hot path."""
import json

import pytest

from cni import jsonio

DOCS = [
    {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x", "mtu": 1450, "f": 1.5, "b": True, "n": None}]},
    [], {}, "str\u00e9\u2603", 0, -12, 3.25, True, None, [1, [2, [3, {"a": {"b": []}}]]],
    {"esc": "quote\" back\\ nl\n tab\t ctl\u0001 slash/"},
]


@pytest.mark.parametrize("doc", DOCS)
def test_round_trip_matches_json(doc):
    text = json.dumps(doc, separators=(",", ":"))
    assert jsonio.dumps(doc) == text
    assert jsonio.loads(text) == doc
    assert jsonio.loads(text.encode()) == doc
    assert jsonio.loads("  \n" + json.dumps(doc, indent=2) + "\n\t") == doc


@pytest.mark.parametrize("bad", ["", " ", "{", "{} {}", "[1,]", "{'a': 1}", "NaN", "Infinity", b"\xff\xfe", "tru"])
def test_bad_text_is_a_json_error(bad):
    with pytest.raises(jsonio.JSONError):
        jsonio.loads(bad)


def test_unserialisable_is_a_type_error():
    with pytest.raises(TypeError):
        jsonio.dumps({"a": object()})
