"""Tests for control.api.selectors (label and field selectors)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from control.api.selectors import (  # noqa: E402
    DOES_NOT_EXIST,
    DOUBLE_EQUALS,
    EQUALS,
    EXISTS,
    FIELD_DEFAULTS,
    FIELD_SELECTORS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_EQUALS,
    NOT_IN,
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    escape_field_value,
    parse_field_selector,
    parse_label_selector,
    selector_from_dict,
    selector_from_map,
    supported_fields,
    validate_label_key,
    validate_label_value,
)

# ---------------------------------------------------------------------------
# Label selector: parsing into requirements
# ---------------------------------------------------------------------------

PARSE_CASES = [
    ("a=b", [("a", EQUALS, ("b",))]),
    ("a==b", [("a", DOUBLE_EQUALS, ("b",))]),
    ("a!=b", [("a", NOT_EQUALS, ("b",))]),
    ("a in (b,c)", [("a", IN, ("b", "c"))]),
    ("a notin (c,b,c)", [("a", NOT_IN, ("b", "c"))]),
    ("a", [("a", EXISTS, ())]),
    ("!a", [("a", DOES_NOT_EXIST, ())]),
    ("a>5", [("a", GREATER_THAN, ("5",))]),
    ("a<5", [("a", LESS_THAN, ("5",))]),
    ("a=", [("a", EQUALS, ("",))]),
    ("a!=", [("a", NOT_EQUALS, ("",))]),
    ("a in ()", [("a", IN, ("",))]),
    ("a in (b,)", [("a", IN, ("", "b"))]),
    ("a in (,b)", [("a", IN, ("", "b"))]),
    ("a in (b,,c)", [("a", IN, ("", "b", "c"))]),
    ("a notin ()", [("a", NOT_IN, ("",))]),
    # in / notin are keywords only in operator position
    ("in=notin", [("in", EQUALS, ("notin",))]),
    ("notin in (in,notin)", [("notin", IN, ("in", "notin"))]),
    ("example.com/app-name=My_Value.1", [("example.com/app-name", EQUALS, ("My_Value.1",))]),
    ("app.kubernetes.io/name", [("app.kubernetes.io/name", EXISTS, ())]),
    # requirements come back sorted by key (stable), like apimachinery
    ("z=1,a=2,!m", [("a", EQUALS, ("2",)), ("m", DOES_NOT_EXIST, ()), ("z", EQUALS, ("1",))]),
    ("a=1,a!=2", [("a", EQUALS, ("1",)), ("a", NOT_EQUALS, ("2",))]),
    ("", []),
]


@pytest.mark.parametrize("text,expected", PARSE_CASES)
def test_parse_label_selector_requirements(text, expected):
    sel = parse_label_selector(text)
    assert [tuple(r) for r in sel.requirements] == expected
    assert all(isinstance(r, Requirement) for r in sel.requirements)
    assert sel.empty == (expected == [])


WHITESPACE_CASES = [
    (" a = b ", "a=b"),
    ("a\t==\tb", "a==b"),
    ("\na != b\r\n", "a!=b"),
    ("a in(b,c)", "a in (b,c)"),
    ("a  in  ( b , c )", "a in (b,c)"),
    ("a notin(b)", "a notin (b)"),
    ("  ! a  ", "!a"),
    ("a = b , c , ! d", "a=b,c,!d"),
    ("a= ,b=c", "a=,b=c"),
    ("   ", ""),
    ("\t\n", ""),
]


@pytest.mark.parametrize("text,canonical", WHITESPACE_CASES)
def test_whitespace_is_tolerated(text, canonical):
    sel = parse_label_selector(text)
    assert str(sel) == canonical
    assert sel == parse_label_selector(canonical)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("a=b,c in (e,d),!f,g,h notin (i)", "a=b,c in (d,e),!f,g,h notin (i)"),
        ("b>10,a<3", "a<3,b>10"),
        ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ],
)
def test_label_selector_str_round_trips(text, expected):
    sel = parse_label_selector(text)
    assert str(sel) == expected
    assert parse_label_selector(str(sel)) == sel


# ---------------------------------------------------------------------------
# Label selector: matching
# ---------------------------------------------------------------------------

MATCH_CASES = [
    # equality
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a=b", None, False),
    ("a==b", {"a": "b", "x": "y"}, True),
    ("a==b", {"a": "B"}, False),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    # inequality matches objects without the key
    ("a!=b", {"a": "c"}, True),
    ("a!=b", {"a": "b"}, False),
    ("a!=b", {}, True),
    ("a!=b", None, True),
    ("a!=b", {"other": "b"}, True),
    # set based
    ("a in (b,c)", {"a": "b"}, True),
    ("a in (b,c)", {"a": "c"}, True),
    ("a in (b,c)", {"a": "d"}, False),
    ("a in (b,c)", {}, False),
    ("a in (b)", {"a": "b"}, True),
    ("a in ()", {"a": ""}, True),
    ("a in ()", {"a": "x"}, False),
    ("a in (b,)", {"a": ""}, True),
    ("a notin (b,c)", {"a": "d"}, True),
    ("a notin (b,c)", {"a": "b"}, False),
    ("a notin (b,c)", {"a": "c"}, False),
    ("a notin (b,c)", {}, True),
    ("a notin (b,c)", None, True),
    ("a notin (b)", {"a": "b"}, False),
    ("a notin (b)", {}, True),
    # existence
    ("a", {"a": ""}, True),
    ("a", {"a": "x"}, True),
    ("a", {"b": "x"}, False),
    ("a", None, False),
    ("!a", {"b": "x"}, True),
    ("!a", {"a": ""}, False),
    ("!a", None, True),
    # integer comparison
    ("a>5", {"a": "6"}, True),
    ("a>5", {"a": "5"}, False),
    ("a>5", {"a": "10"}, True),  # numeric, not lexical
    ("a>5", {"a": "x"}, False),
    ("a>5", {}, False),
    ("a<5", {"a": "4"}, True),
    ("a<5", {"a": "5"}, False),
    ("a<5", {"a": "007"}, False),
    ("a<10", {"a": "007"}, True),
    # combinations are ANDed
    ("a=b,c=d", {"a": "b", "c": "d"}, True),
    ("a=b,c=d", {"a": "b", "c": "x"}, False),
    ("a=b,c=d", {"a": "b"}, False),
    ("a=b,!c", {"a": "b"}, True),
    ("a=b,!c", {"a": "b", "c": "d"}, False),
    ("a in (x,y),b notin (z),c", {"a": "y", "c": ""}, True),
    ("a in (x,y),b notin (z),c", {"a": "y", "b": "z", "c": ""}, False),
    ("a in (x,y),b notin (z),c", {"a": "y", "b": "w"}, False),
    ("a=1,a!=2", {"a": "1"}, True),
    ("a=1,a=2", {"a": "1"}, False),
    ("env in (prod,staging),tier!=frontend", {"env": "prod", "tier": "backend"}, True),
    ("env in (prod,staging),tier!=frontend", {"env": "prod", "tier": "frontend"}, False),
    # empty selector matches everything
    ("", {}, True),
    ("", None, True),
    ("", {"a": "b"}, True),
    # keyword-looking keys and values
    ("in=notin", {"in": "notin"}, True),
    ("notin in (in)", {"notin": "in"}, True),
]


@pytest.mark.parametrize("text,labels,expected", MATCH_CASES)
def test_label_selector_matches(text, labels, expected):
    assert parse_label_selector(text).matches(labels) is expected


def test_matches_object_reads_metadata_labels():
    sel = parse_label_selector("app=web")
    assert sel.matches_object({"metadata": {"labels": {"app": "web"}}})
    assert not sel.matches_object({"metadata": {"labels": {"app": "db"}}})
    assert not sel.matches_object({"metadata": {}})
    assert not sel.matches_object({})
    assert parse_label_selector("app!=web").matches_object({"metadata": {}})


def test_requires_exact_match():
    sel = parse_label_selector("a!=x,a=y,b in (1),c in (1,2),d")
    assert sel.requires_exact_match("a") == "y"
    assert sel.requires_exact_match("b") == "1"
    assert sel.requires_exact_match("c") is None
    assert sel.requires_exact_match("d") is None
    assert sel.requires_exact_match("zz") is None


def test_parse_is_cached_and_immutable():
    s1 = parse_label_selector("a=b,c")
    s2 = parse_label_selector("a=b,c")
    assert s1 is s2
    assert isinstance(s1.requirements, tuple)
    assert parse_label_selector("c,a=b") == s1
    assert hash(parse_label_selector("c,a=b")) == hash(s1)
    assert parse_label_selector(None).empty


def test_everything_and_nothing():
    assert LabelSelector.everything().empty
    assert LabelSelector.everything().matches(None)
    nothing = LabelSelector.nothing()
    assert not nothing.empty
    assert nothing.matches_nothing
    assert not nothing.matches({})
    assert not nothing.matches({"a": "b"})
    assert nothing != LabelSelector.everything()


# ---------------------------------------------------------------------------
# Label selector: errors
# ---------------------------------------------------------------------------

ERROR_CASES = [
    # unbalanced parentheses
    ("a in (b", ['unable to parse requirement: "a in (b"', 'missing ")"']),
    ("a in (b,c", ['"a in (b,c"', 'missing ")"']),
    ("a in (", ['missing ")"']),
    ("a notin (b", ['"a notin (b"', 'missing ")"']),
    ("a in b)", ['expected "(" after "in", found "b"']),
    ("a in b", ['expected "(" after "in"']),
    ("a in", ['expected "(" after "in", found end of string']),
    ("a=b)", ['unable to parse selector "a=b)"', 'found ")" at position 3', 'expected "," or end of string']),
    ("a in (b))", ['found ")" at position 8']),
    ("a in (b c)", ['"a in (b c"', 'found "c", expected "," or ")"']),
    ("a in (=)", ['found "=", expected a value, "," or ")"']),
    ("a in ((b))", ['found "("']),
    # empty / missing key
    ("=a", ['unable to parse requirement: "=a"', 'missing label key before "="']),
    ("==a", ['missing label key before "=="']),
    ("!=a", ['missing label key before "!="']),
    ("a=b,=c", ['"=c"', "missing label key"]),
    ("(a)", ['missing label key before "("']),
    ("in (a)", ['"in (": unknown operator "("']),  # "in" is a key in key position
    ("!", ['expected a label key after "!", found end of string']),
    ("!,a", ['expected a label key after "!", found ","']),
    (",a", ['unable to parse selector ",a"', 'found "," at position 0']),
    ("a,", ['expected a requirement after "," at position 1']),
    ("a,,b", ['found "," at position 2']),
    ("/a", ['invalid label key "/a"', "prefix part must be non-empty"]),
    ("a/", ['invalid label key "a/"', "name part must be non-empty"]),
    # bad key characters
    ("-a=b", ['unable to parse requirement: "-a"', 'invalid label key "-a"', "name part must consist of"]),
    ("a-=b", ['invalid label key "a-"']),
    ("a$b", ['invalid label key "a$b"']),
    ('"a"=b', ["invalid label key"]),
    ("a/b/c", ['invalid label key "a/b/c"', "a qualified name must consist"]),
    ("Example.com/a", ["prefix part a lowercase RFC 1123 subdomain"]),
    ("ex_ample.com/a", ["prefix part a lowercase RFC 1123 subdomain"]),
    ("a" * 64, ["name part must be no more than 63 characters"]),
    ("a" * 254 + "/b", ["prefix part must be no more than 253 characters"]),
    # bad values
    ("a=" + "v" * 64, ["invalid label value", "must be no more than 63 characters"]),
    ("a in (b," + "v" * 64 + ")", ["must be no more than 63 characters"]),
    ("a=-b", ['invalid label value "-b"', "a valid label must be an empty string"]),
    ("a=b/c", ['invalid label value "b/c"']),
    ("a in (b,c$)", ['invalid label value "c$"']),
    ("a=(b)", ['found "(", expected a value after "="']),
    ("a=!b", ['found "!", expected a value after "="']),
    ("a=b c", ['found "c" at position 4', 'expected "," or end of string']),
    ("a=b=c", ['found "=" at position 3']),
    # unknown operator
    ("a b", ['unknown operator "b"', "expected one of: =, ==, !=, in, notin, >, <"]),
    ("a (b)", ['unknown operator "("']),
    ("a ! b", ['unknown operator "!"']),
    ("a ) b", ['unknown operator ")"']),
    ("a exists", ['unknown operator "exists"']),
    ("!a=b", ['"!a" (does not exist) takes no operator or value, found "="']),
    ("!a in (b)", ['"!a" (does not exist) takes no operator']),
    # integer operators
    ("a>b", ['value "b" for ">" must be an integer']),
    ("a<", ['value "" for "<" must be an integer']),
    ("a>99999999999999999999", ["must be an integer"]),
]


@pytest.mark.parametrize("text,fragments", ERROR_CASES)
def test_label_selector_errors(text, fragments):
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert isinstance(info.value, ValueError)
    assert info.value.selector == text
    assert info.value.position is not None and 0 <= info.value.position <= len(text)


def test_error_message_example_from_spec():
    with pytest.raises(SelectorError) as info:
        parse_label_selector("a in (b")
    assert str(info.value) == 'unable to parse requirement: "a in (b": missing ")"'
    assert info.value.position == len("a in (b")


@pytest.mark.parametrize(
    "text,position",
    [("a=b)", 3), ("a b", 2), ("x=y,a in (b c)", 12), ("ok,-bad", 3), (",", 0)],
)
def test_error_positions(text, position):
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert info.value.position == position


# ---------------------------------------------------------------------------
# Label key / value validation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key,valid",
    [
        ("a", True),
        ("A", True),
        ("a.b_c-d", True),
        ("1", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("example.com/a", True),
        ("k8s.io/" + "a" * 63, True),
        ("a" * 253 + "/b", True),
        ("a" * 254 + "/b", False),
        ("a." * 120 + "b/c", True),
        ("", False),
        ("-a", False),
        ("a-", False),
        ("_a", False),
        ("a b", False),
        ("é", False),
        ("/a", False),
        ("a/", False),
        ("a/b/c", False),
        ("EXAMPLE.com/a", False),
        ("-example.com/a", False),
        ("example..com/a", False),
        (5, False),
    ],
)
def test_validate_label_key(key, valid):
    assert (validate_label_key(key) == []) is valid


@pytest.mark.parametrize(
    "value,valid",
    [
        ("", True),
        ("a", True),
        ("A.b-c_d", True),
        ("1", True),
        ("v" * 63, True),
        ("v" * 64, False),
        ("-a", False),
        ("a-", False),
        ("a/b", False),
        ("a b", False),
        (None, False),
        (1, False),
    ],
)
def test_validate_label_value(value, valid):
    assert (validate_label_value(value) == []) is valid


# ---------------------------------------------------------------------------
# metav1.LabelSelector dicts and plain maps
# ---------------------------------------------------------------------------

DICT_MATCH_CASES = [
    (None, {"a": "b"}, True),
    (None, None, True),
    ({}, {"a": "b"}, True),
    ({"matchLabels": {}, "matchExpressions": []}, {}, True),
    ({"matchLabels": None, "matchExpressions": None}, {}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchLabels": {"app": "web"}}, None, False),
    ({"matchLabels": {"app": "web", "tier": "fe"}}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]}, {"env": "b"}, True),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]}, {"env": "c"}, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {"env": "b"}, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {"env": "a"}, False),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
    ({"matchExpressions": [{"key": "env", "operator": "Exists", "values": []}]}, {}, False),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "x"}, False),
    (
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        },
        {"app": "web", "env": "prod"},
        True,
    ),
    (
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}],
        },
        {"app": "db", "env": "prod"},
        False,
    ),
]


@pytest.mark.parametrize("sel,labels,expected", DICT_MATCH_CASES)
def test_selector_from_dict_matches(sel, labels, expected):
    assert selector_from_dict(sel).matches(labels) is expected


def test_selector_from_dict_equivalent_to_string_form():
    sel = selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "NotIn", "values": ["b", "a"]},
                {"key": "x", "operator": "Exists"},
            ],
        }
    )
    assert sel == parse_label_selector("app=web,env notin (a,b),x")
    assert str(sel) == "app=web,env notin (a,b),x"


def test_selector_from_dict_empty_and_null():
    assert selector_from_dict(None).empty
    assert selector_from_dict({}).empty
    assert selector_from_dict({"matchLabels": {}}).empty
    nothing = selector_from_dict(None, null_matches_nothing=True)
    assert not nothing.matches({"a": "b"})
    assert selector_from_dict({}, null_matches_nothing=True).matches({"a": "b"})


DICT_ERROR_CASES = [
    ({"matchExpressions": [{"key": "a", "operator": "Foo"}]}, ["matchExpressions[0].operator", '"Foo" is not a valid label selector operator']),
    ({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]}, ['"in" is not a valid label selector operator']),
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}, ["not a valid label selector operator"]),
    ({"matchExpressions": [{"key": "a"}]}, ["matchExpressions[0].operator", "is not a valid label selector operator"]),
    ({"matchExpressions": [{"key": "a", "operator": "In"}]}, ["matchExpressions[0].values", "values set can't be empty"]),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, ["values set can't be empty"]),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}, ["values set can't be empty"]),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, ["values set must be empty for exists and does not exist"]),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": ["x"]}]}, ["values set must be empty"]),
    (
        {"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Nope"}]},
        ["matchExpressions[1].operator"],
    ),
    ({"matchExpressions": [{"operator": "Exists"}]}, ["matchExpressions[0].key", "must be specified"]),
    ({"matchExpressions": [{"key": "-a", "operator": "Exists"}]}, ["matchExpressions[0].key", 'invalid label key "-a"']),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["ok", "-bad"]}]}, ["matchExpressions[0].values[1]", 'invalid label value "-bad"']),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]}, ["matchExpressions[0].values", "must be a list"]),
    ({"matchExpressions": {"key": "a"}}, ["matchExpressions: must be a list"]),
    ({"matchExpressions": ["a"]}, ["matchExpressions[0]: must be an object"]),
    ({"matchLabels": {"a b": "c"}}, ["matchLabels", 'invalid label key "a b"']),
    ({"matchLabels": {"a": "v" * 64}}, ["matchLabels[a]", "must be no more than 63 characters"]),
    ({"matchLabels": {"a": 1}}, ["matchLabels[a]", "must be a string"]),
    ({"matchLabels": ["a"]}, ["matchLabels: must be an object"]),
    ("a=b", ["label selector must be an object"]),
]


@pytest.mark.parametrize("sel,fragments", DICT_ERROR_CASES)
def test_selector_from_dict_errors(sel, fragments):
    with pytest.raises(SelectorError) as info:
        selector_from_dict(sel)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "m,labels,expected",
    [
        (None, {"a": "b"}, True),
        ({}, {"a": "b"}, True),
        ({}, None, True),
        ({"app": "web"}, {"app": "web", "pod-template-hash": "x"}, True),
        ({"app": "web"}, {"app": "db"}, False),
        ({"app": "web"}, None, False),
        ({"app": "web", "tier": "fe"}, {"app": "web", "tier": "fe"}, True),
        ({"app": "web", "tier": "fe"}, {"app": "web"}, False),
        ({"app": ""}, {"app": ""}, True),
    ],
)
def test_selector_from_map(m, labels, expected):
    assert selector_from_map(m).matches(labels) is expected


def test_selector_from_map_validation():
    assert selector_from_map({}).empty
    assert selector_from_map(None).empty
    with pytest.raises(SelectorError, match="invalid label key"):
        selector_from_map({"a b": "c"})
    with pytest.raises(SelectorError, match="invalid label value"):
        selector_from_map({"a": "b c"})
    # without validation the map is taken as is
    assert selector_from_map({"a b": "c"}, validate=False).matches({"a b": "c"})


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

FIELD_PARSE_CASES = [
    ("", []),
    ("metadata.name=foo", [("metadata.name", "=", "foo")]),
    ("metadata.name==foo", [("metadata.name", "=", "foo")]),
    ("metadata.name!=foo", [("metadata.name", "!=", "foo")]),
    ("spec.nodeName=", [("spec.nodeName", "=", "")]),
    ("spec.nodeName!=", [("spec.nodeName", "!=", "")]),
    (
        "metadata.namespace=ns,status.phase!=Running",
        [("metadata.namespace", "=", "ns"), ("status.phase", "!=", "Running")],
    ),
    ("a=b,,c=d,", [("a", "=", "b"), ("c", "=", "d")]),
    (" a =b", [("a", "=", "b")]),
    ("a= b", [("a", "=", " b")]),
    # escapes
    (r"a=x\,y", [("a", "=", "x,y")]),
    (r"a=x\=y", [("a", "=", "x=y")]),
    (r"a=x\\y", [("a", "=", "x\\y")]),
    (r"a=\\", [("a", "=", "\\")]),
    (r"a=\,\=\\,b!=\\\,", [("a", "=", ",=\\"), ("b", "!=", "\\,")]),
    (r"a=x\\,b=y", [("a", "=", "x\\"), ("b", "=", "y")]),
    ("a==b", [("a", "=", "b")]),
    (r"a!=\=b", [("a", "!=", "=b")]),
]


@pytest.mark.parametrize("text,expected", FIELD_PARSE_CASES)
def test_parse_field_selector(text, expected):
    sel = parse_field_selector(text)
    assert sel.requirements == expected
    assert isinstance(sel.requirements, list)
    assert sel.empty == (expected == [])


@pytest.mark.parametrize("value", ["plain", "a,b", "a=b", "back\\slash", "\\,=", ""])
def test_escape_field_value_round_trips(value):
    sel = parse_field_selector("metadata.name=" + escape_field_value(value))
    assert sel.requirements == [("metadata.name", "=", value)]
    assert parse_field_selector(str(sel)) == sel


FIELD_ERROR_CASES = [
    ("metadata.name", ["invalid selector", "can't understand \"metadata.name\""]),
    ("a=b,c", ["can't understand \"c\"", "position 4"]),
    ("a=b,c d", ["can't understand \"c d\""]),
    ("=b", ["missing field name"]),
    (" !=b", ["missing field name"]),
    (r"a=\x", ["invalid escape sequence \\x"]),
    (r"a=\n", ["invalid escape sequence"]),
    ("a=b\\", ["invalid escape sequence", "single backslash"]),
    ("a=b=c", ["unescaped character '='"]),
    ("a==b=c", ["unescaped character '='"]),
    ("a!=b=c", ["unescaped character '='"]),
]


@pytest.mark.parametrize("text,fragments", FIELD_ERROR_CASES)
def test_field_selector_errors(text, fragments):
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "resource,text,ok",
    [
        ("pods", "spec.nodeName=n1", True),
        ("pods", "metadata.name=a,metadata.namespace=b", True),
        ("pods", "status.phase!=Succeeded,status.phase!=Failed", True),
        ("pods", "spec.hostNetwork=true", True),
        ("pods", "spec.foo=x", False),
        ("pods", "spec.unschedulable=false", False),
        ("nodes", "spec.unschedulable=false", True),
        ("nodes", "spec.nodeName=x", False),
        ("namespaces", "status.phase=Active", True),
        ("services", "spec.type=ClusterIP,spec.clusterIP=None", True),
        ("services", "spec.selector=x", False),
        ("replicasets", "status.replicas=0", True),
        ("endpointslices", "addressType=IPv4", True),
        ("deployments", "metadata.name=x", True),
        ("deployments", "status.replicas=1", False),
        ("leases", "metadata.namespace=kube-system", True),
        ("endpoints", "metadata.name=kubernetes", True),
    ],
)
def test_field_selector_allowed_fields(resource, text, ok):
    if ok:
        parse_field_selector(text, FIELD_SELECTORS[resource])
    else:
        with pytest.raises(SelectorError) as info:
            parse_field_selector(text, FIELD_SELECTORS[resource])
        field = text.split("=")[0].rstrip("!")
        assert str(info.value) == f"field label not supported: {field}"


def test_unsupported_field_message_matches_kubernetes():
    with pytest.raises(SelectorError) as info:
        parse_field_selector("metadata.name=x,spec.foo=bar", {"metadata.name"})
    assert str(info.value) == "field label not supported: spec.foo"
    # without an allowed set anything parses
    assert parse_field_selector("spec.foo=bar").requirements == [("spec.foo", "=", "bar")]


def test_field_selectors_table():
    plurals = {"pods", "services", "nodes", "namespaces", "endpoints", "endpointslices", "deployments", "replicasets", "leases"}
    assert plurals <= set(FIELD_SELECTORS)
    for plural, fields in FIELD_SELECTORS.items():
        assert isinstance(fields, set)
        assert {"metadata.name", "metadata.namespace"} <= fields, plural
    assert FIELD_SELECTORS["pods"] == {
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    }
    assert FIELD_SELECTORS["nodes"] - {"metadata.name", "metadata.namespace"} == {"spec.unschedulable"}
    assert FIELD_SELECTORS["namespaces"] - {"metadata.name", "metadata.namespace"} == {"status.phase"}
    assert FIELD_SELECTORS["services"] - {"metadata.name", "metadata.namespace"} == {"spec.clusterIP", "spec.type"}
    assert FIELD_SELECTORS["replicasets"] - {"metadata.name", "metadata.namespace"} == {"status.replicas"}
    assert FIELD_SELECTORS["endpointslices"] - {"metadata.name", "metadata.namespace"} == {"addressType"}
    assert supported_fields("configmaps") == {"metadata.name", "metadata.namespace"}
    assert supported_fields("pods") is FIELD_SELECTORS["pods"]


POD = {
    "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"}},
    "spec": {"nodeName": "node-a", "restartPolicy": "Always", "hostNetwork": True, "schedulerName": "default-scheduler"},
    "status": {"phase": "Running", "podIP": "10.0.0.5"},
}
PENDING_POD = {
    "metadata": {"name": "web-2", "namespace": "default"},
    "spec": {"schedulerName": "default-scheduler"},
    "status": {"phase": "Pending"},
}
NODE = {"metadata": {"name": "node-a"}, "spec": {}}
CORDONED_NODE = {"metadata": {"name": "node-b"}, "spec": {"unschedulable": True}}
RS = {"metadata": {"name": "rs", "namespace": "default"}, "status": {"replicas": 3}}
EMPTY_RS = {"metadata": {"name": "rs0", "namespace": "default"}, "status": {}}

FIELD_MATCH_CASES = [
    ("", POD, True),
    ("", {}, True),
    ("metadata.name=web-1", POD, True),
    ("metadata.name==web-1", POD, True),
    ("metadata.name=web-2", POD, False),
    ("metadata.name!=web-2", POD, True),
    ("metadata.name!=web-1", POD, False),
    ("metadata.namespace=default,metadata.name=web-1", POD, True),
    ("metadata.namespace=default,metadata.name=web-2", POD, False),
    ("spec.nodeName=node-a", POD, True),
    ("status.phase=Running,spec.restartPolicy=Always", POD, True),
    ("status.podIP=10.0.0.5", POD, True),
    # a missing field is the empty string
    ("spec.nodeName=", PENDING_POD, True),
    ("spec.nodeName=", POD, False),
    ("spec.nodeName!=", POD, True),
    ("spec.nodeName!=", PENDING_POD, False),
    ("spec.nodeName!=node-a", PENDING_POD, True),
    ("status.podIP=", PENDING_POD, True),
    ("status.nominatedNodeName=", POD, True),
    ("metadata.namespace=", NODE, True),
    ("spec.nodeName=,spec.schedulerName=default-scheduler", PENDING_POD, True),
    ("status.phase!=Succeeded,status.phase!=Failed", PENDING_POD, True),
    ("spec.nodeName=", {}, True),
    ("spec.nodeName=", {"spec": None}, True),
    ("spec.nodeName=", {"spec": "junk"}, True),
    # booleans / integers render like Go, missing ones as their zero value
    ("spec.hostNetwork=true", POD, True),
    ("spec.hostNetwork=false", POD, False),
    ("spec.hostNetwork=false", PENDING_POD, True),
    ("spec.unschedulable=false", NODE, True),
    ("spec.unschedulable=true", NODE, False),
    ("spec.unschedulable=true", CORDONED_NODE, True),
    ("spec.unschedulable!=true", CORDONED_NODE, False),
    ("status.replicas=3", RS, True),
    ("status.replicas=0", EMPTY_RS, True),
    ("status.replicas!=0", RS, True),
    # non-scalar fields never equal a value
    ("metadata.labels=", POD, False),
    ("metadata.labels!=", POD, True),
    # escaped values
    (r"metadata.name=a\,b", {"metadata": {"name": "a,b"}}, True),
    (r"metadata.name=a\=b", {"metadata": {"name": "a=b"}}, True),
    (r"metadata.name=a\\b", {"metadata": {"name": "a\\b"}}, True),
    (r"metadata.name=a\\b", {"metadata": {"name": "a\\\\b"}}, False),
]


@pytest.mark.parametrize("text,obj,expected", FIELD_MATCH_CASES)
def test_field_selector_matches(text, obj, expected):
    assert parse_field_selector(text).matches(obj) is expected


def test_field_defaults_only_for_typed_fields():
    assert FIELD_DEFAULTS == {"spec.hostNetwork": "false", "spec.unschedulable": "false", "status.replicas": "0"}
    assert parse_field_selector("status.phase=").matches({"metadata": {}})


def test_field_selector_pushdown_helpers():
    sel = parse_field_selector("metadata.namespace==ns1,metadata.name!=x,spec.nodeName=")
    assert sel.requirements == [
        ("metadata.namespace", "=", "ns1"),
        ("metadata.name", "!=", "x"),
        ("spec.nodeName", "=", ""),
    ]
    assert sel.exact_match("metadata.namespace") == "ns1"
    assert sel.exact_match("metadata.name") is None
    assert sel.exact_match("spec.nodeName") == ""
    assert sel.exact_match("status.phase") is None
    assert sel.fields() == {"metadata.namespace", "metadata.name", "spec.nodeName"}
    # the returned list is a copy: the selector stays immutable
    sel.requirements.clear()
    assert len(sel.requirements) == 3


def test_field_selector_constructor():
    sel = FieldSelector([("metadata.name", "==", "a")])
    assert sel.requirements == [("metadata.name", "=", "a")]
    with pytest.raises(SelectorError):
        FieldSelector([("metadata.name", "~", "a")])
    assert parse_field_selector(None).empty
