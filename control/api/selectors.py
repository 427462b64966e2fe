"""Kubernetes label and field selectors.

Objects are plain JSON-decoded dicts.  Everything here is standard library
only and immutable once built, so parsed selectors can be cached and shared
between threads.

Label selectors
---------------
``parse_label_selector(text)`` implements the string syntax of
``k8s.io/apimachinery/pkg/labels.Parse`` (the ``labelSelector`` query
parameter, ``kubectl -l``)::

    <selector>    ::= <requirement> | <requirement> "," <selector>
    <requirement> ::= [!] KEY [ <set-based> | <exact-match> ]
    <set-based>   ::= ("in" | "notin") "(" VALUE { "," VALUE } ")"
    <exact-match> ::= ("=" | "==" | "!=" | ">" | "<") VALUE

Whitespace (space, tab, CR, LF) may surround any token.  ``in``/``notin`` are
keywords only in operator position, so ``in=notin`` is a valid selector.
As in apimachinery, values may be empty (``a=``, ``a in ()``,
``a in (x,,y)`` all contain the empty value), ``!=`` and ``notin`` also match
objects that do not carry the key, and ``>``/``<`` compare integers (the
label must exist and parse as an integer).

``selector_from_dict`` converts a ``metav1.LabelSelector``
(``matchLabels`` + ``matchExpressions``) and ``selector_from_map`` a plain
``map[string]string`` selector such as a Service's ``spec.selector``.

Field selectors
---------------
``parse_field_selector(text, allowed)`` implements
``k8s.io/apimachinery/pkg/fields.ParseSelector``: comma-separated
``field=value``, ``field==value`` or ``field!=value`` terms, where ``\\,``,
``\\=`` and ``\\\\`` escape a comma, an equals sign and a backslash inside the
value.  ``FIELD_SELECTORS`` lists the fields the real API server accepts per
resource; pass ``supported_fields(resource)`` as ``allowed`` to reject the
others with Kubernetes' ``field label not supported: <field>`` message.

``FieldSelector.matches`` resolves the dotted field path in the object.  A
missing field reads as the empty string (so ``spec.nodeName=`` selects
unscheduled pods, as kube-scheduler does), except the Go-typed boolean and
integer fields in ``FIELD_DEFAULTS`` whose zero value Kubernetes would report
(``spec.unschedulable=false`` selects nodes that omit the field).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

__all__ = [
    "SelectorError",
    "Requirement",
    "LabelSelector",
    "FieldSelector",
    "parse_label_selector",
    "selector_from_dict",
    "selector_from_map",
    "parse_field_selector",
    "supported_fields",
    "escape_field_value",
    "validate_label_key",
    "validate_label_value",
    "FIELD_SELECTORS",
    "FIELD_DEFAULTS",
    "IN",
    "NOT_IN",
    "EQUALS",
    "DOUBLE_EQUALS",
    "NOT_EQUALS",
    "EXISTS",
    "DOES_NOT_EXIST",
    "GREATER_THAN",
    "LESS_THAN",
]


class SelectorError(ValueError):
    """A label or field selector that cannot be parsed or is invalid.

    ``str(err)`` says what is wrong and where.  ``selector`` is the text
    being parsed (or None for dict selectors), ``position`` the 0-based
    character offset of the offending token when known, and ``path`` the
    location inside a dict selector (e.g. ``matchExpressions[0].operator``).
    """

    def __init__(
        self,
        message: str,
        *,
        selector: str | None = None,
        position: int | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.selector = selector
        self.position = position
        self.path = path


# ---------------------------------------------------------------------------
# Label key / value validation (k8s.io/apimachinery/pkg/util/validation)
# ---------------------------------------------------------------------------

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(_QUALIFIED_NAME_FMT)
_QUALIFIED_NAME_MAX = 63
_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or "
    f"'123-abc', regex used for validation is '{_QUALIFIED_NAME_FMT}')"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = f"{_DNS1123_LABEL_FMT}(\\.{_DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
    "characters, '-' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'example.com', regex used for validation is "
    f"'{_DNS1123_SUBDOMAIN_FMT}')"
)
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_MAX = 63
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric "
    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
    "character (e.g. 'MyValue', or 'my_value', or '12345', regex used for "
    f"validation is '{_LABEL_VALUE_FMT}')"
)


def validate_label_key(key: str) -> list[str]:
    """Problems with ``key`` as a label key (``IsQualifiedName``); [] if valid."""
    if not isinstance(key, str):
        return ["must be a string"]
    parts = key.split("/")
    if len(parts) == 1:
        name = parts[0]
        errs: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        errs = []
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > _DNS1123_SUBDOMAIN_MAX:
                errs.append(f"prefix part must be no more than {_DNS1123_SUBDOMAIN_MAX} characters")
            if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
                errs.append("prefix part " + _DNS1123_SUBDOMAIN_MSG)
    else:
        return [
            "a qualified name " + _QUALIFIED_NAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    else:
        if len(name) > _QUALIFIED_NAME_MAX:
            errs.append(f"name part must be no more than {_QUALIFIED_NAME_MAX} characters")
        if not _QUALIFIED_NAME_RE.fullmatch(name):
            errs.append("name part " + _QUALIFIED_NAME_MSG)
    return errs


def validate_label_value(value: str) -> list[str]:
    """Problems with ``value`` as a label value (``IsValidLabelValue``); [] if valid."""
    if not isinstance(value, str):
        return ["must be a string"]
    errs = []
    if len(value) > _LABEL_VALUE_MAX:
        errs.append(f"must be no more than {_LABEL_VALUE_MAX} characters")
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(_LABEL_VALUE_MSG)
    return errs


def _short(value: Any, limit: int = 80) -> str:
    """Quote a value for an error message, eliding very long ones."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------

# Operators, spelled as k8s.io/apimachinery/pkg/selection spells them.
IN = "in"
NOT_IN = "notin"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_SET_OPS = frozenset({IN, NOT_IN})
_EXACT_OPS = frozenset({EQUALS, DOUBLE_EQUALS, NOT_EQUALS})
_UNARY_OPS = frozenset({EXISTS, DOES_NOT_EXIST})
_NUMERIC_OPS = frozenset({GREATER_THAN, LESS_THAN})
_ALL_OPS = _SET_OPS | _EXACT_OPS | _UNARY_OPS | _NUMERIC_OPS

# Compiled opcodes for LabelSelector.matches.
_OP_EQ, _OP_IN, _OP_NE, _OP_NOTIN, _OP_EXISTS, _OP_NOTEXISTS, _OP_GT, _OP_LT = range(8)

_INT_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MISSING: Any = object()


def _parse_int64(text: Any) -> int | None:
    """Go's strconv.ParseInt(text, 10, 64), or None if it would fail."""
    if not isinstance(text, str) or not _INT_RE.fullmatch(text):
        return None
    value = int(text)
    if value < _INT64_MIN or value > _INT64_MAX:
        return None
    return value


class Requirement(NamedTuple):
    """One label requirement.  ``operator`` is one of the module constants
    (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, EXISTS, DOES_NOT_EXIST,
    GREATER_THAN, LESS_THAN); ``values`` is sorted and de-duplicated, empty
    for EXISTS/DOES_NOT_EXIST and a single item for the exact and numeric
    operators."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        joined = ",".join(self.values)
        if op in _SET_OPS:
            return f"{self.key} {op} ({joined})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{joined}"


def _requirement_problems(key: str, op: str, values: tuple[str, ...]) -> list[str]:
    """NewRequirement's checks of the operator/value combination (the key and
    values themselves are validated separately)."""
    if op in _SET_OPS:
        if not values:
            return ["for 'in', 'notin' operators, values set can't be empty"]
    elif op in _EXACT_OPS:
        if len(values) != 1:
            return ["exact-match compatibility requires one single value"]
    elif op in _UNARY_OPS:
        if values:
            return ["values set must be empty for exists and does not exist"]
    elif op in _NUMERIC_OPS:
        if len(values) != 1:
            return ["for 'Gt', 'Lt' operators, exactly one value is required"]
        if _parse_int64(values[0]) is None:
            return [f"for 'Gt', 'Lt' operators, the value must be an integer, not {_short(values[0])}"]
    else:
        return [f"unsupported operator {_short(op)}, expected one of: {', '.join(sorted(_ALL_OPS))}"]
    return []


def _compile(req: Requirement) -> tuple[str, int, Any]:
    key, op, values = req
    if op in (EQUALS, DOUBLE_EQUALS) or (op == IN and len(values) == 1):
        return key, _OP_EQ, values[0]
    if op == NOT_EQUALS or (op == NOT_IN and len(values) == 1):
        return key, _OP_NE, values[0]
    if op == IN:
        return key, _OP_IN, frozenset(values)
    if op == NOT_IN:
        return key, _OP_NOTIN, frozenset(values)
    if op == EXISTS:
        return key, _OP_EXISTS, None
    if op == DOES_NOT_EXIST:
        return key, _OP_NOTEXISTS, None
    if op in _NUMERIC_OPS:
        bound = _parse_int64(values[0]) if len(values) == 1 else None
        if bound is None:
            raise SelectorError(f"label requirement {str(req)!r}: value must be a single integer")
        return key, (_OP_GT if op == GREATER_THAN else _OP_LT), bound
    raise SelectorError(f"label requirement on {key!r}: unsupported operator {op!r}")


class LabelSelector:
    """An immutable, pre-compiled conjunction of label requirements.

    Build one with ``parse_label_selector``, ``selector_from_dict`` or
    ``selector_from_map``; ``LabelSelector(requirements)`` trusts its input
    apart from checking operators.  Selectors compare equal when they hold
    the same requirements in any order.
    """

    __slots__ = ("_requirements", "_compiled", "_nothing")

    def __init__(self, requirements: Iterable[Requirement] = (), *, _nothing: bool = False) -> None:
        reqs = tuple(Requirement(r[0], r[1], tuple(r[2]) if len(r) > 2 else ()) for r in requirements)
        # apimachinery keeps requirements sorted by key (stable); only
        # String() output depends on it.
        self._requirements: tuple[Requirement, ...] = tuple(sorted(reqs, key=lambda r: r.key))
        self._compiled: tuple[tuple[str, int, Any], ...] = tuple(_compile(r) for r in self._requirements)
        self._nothing = _nothing

    @classmethod
    def everything(cls) -> "LabelSelector":
        """The selector that matches every object (``empty`` is True)."""
        return _EVERYTHING

    @classmethod
    def nothing(cls) -> "LabelSelector":
        """The selector that matches no object (labels.Nothing())."""
        return _NOTHING

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return self._requirements

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches all)."""
        return not self._requirements and not self._nothing

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether a label map (``metadata.labels``, possibly None) matches."""
        if self._nothing:
            return False
        if labels is None:
            labels = {}
        get = labels.get
        for key, code, arg in self._compiled:
            value = get(key, _MISSING)
            if code == _OP_EQ:
                if value != arg:  # _MISSING never equals a value
                    return False
            elif code == _OP_NE:
                if value == arg:
                    return False
            elif code == _OP_IN:
                if value is _MISSING or value not in arg:
                    return False
            elif code == _OP_NOTIN:
                if value is not _MISSING and value in arg:
                    return False
            elif code == _OP_EXISTS:
                if value is _MISSING:
                    return False
            elif code == _OP_NOTEXISTS:
                if value is not _MISSING:
                    return False
            else:  # _OP_GT / _OP_LT
                number = _parse_int64(value)
                if number is None:
                    return False
                if code == _OP_GT:
                    if not number > arg:
                        return False
                elif not number < arg:
                    return False
        return True

    def matches_object(self, obj: Mapping[str, Any] | None) -> bool:
        """``matches`` applied to ``obj["metadata"]["labels"]``."""
        meta = (obj or {}).get("metadata") or {}
        return self.matches(meta.get("labels") if isinstance(meta, Mapping) else None)

    def requires_exact_match(self, key: str) -> str | None:
        """The value ``key`` must have for anything to match (from ``=``,
        ``==`` or a one-value ``in``), or None.  Lets a store push an
        equality down to an index."""
        for req in self._requirements:
            if req.key == key and len(req.values) == 1 and req.operator in (EQUALS, DOUBLE_EQUALS, IN):
                return req.values[0]
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self._requirements)

    def __repr__(self) -> str:
        if self._nothing:
            return "LabelSelector.nothing()"
        return f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self._nothing == other._nothing and sorted(self._requirements) == sorted(other._requirements)

    def __hash__(self) -> int:
        return hash((self._nothing, tuple(sorted(self._requirements))))


_EVERYTHING = LabelSelector(())
_NOTHING = LabelSelector((), _nothing=True)


# --- string syntax ----------------------------------------------------------

_WHITESPACE = frozenset(" \t\r\n")
_SPECIAL = frozenset("=!(),<>")

# token kinds
_T_IDENT = "identifier"
_T_IN = "in"
_T_NOTIN = "notin"
_T_EOS = "end of string"
_SYMBOLS = {"==": "==", "!=": "!=", "=": "=", "!": "!", "(": "(", ")": ")", ",": ",", ">": ">", "<": "<"}
_BINARY_TOKENS = {
    _T_IN: IN,
    _T_NOTIN: NOT_IN,
    "=": EQUALS,
    "==": DOUBLE_EQUALS,
    "!=": NOT_EQUALS,
    ">": GREATER_THAN,
    "<": LESS_THAN,
}
_OPERATOR_LIST = "=, ==, !=, in, notin, >, <"


class _Token(NamedTuple):
    kind: str
    text: str
    start: int
    end: int

    def describe(self) -> str:
        if self.kind == _T_EOS:
            return "end of string"
        return f'"{self.text}"'


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append(_Token(_T_EOS, "", n, n))
            return tokens
        ch = text[i]
        if ch in _SPECIAL:
            pair = text[i : i + 2]
            sym = pair if pair in ("==", "!=") else ch
            tokens.append(_Token(_SYMBOLS[sym], sym, i, i + len(sym)))
            i += len(sym)
            continue
        start = i
        while i < n and text[i] not in _WHITESPACE and text[i] not in _SPECIAL:
            i += 1
        word = text[start:i]
        kind = _T_IN if word == "in" else _T_NOTIN if word == "notin" else _T_IDENT
        tokens.append(_Token(kind, word, start, i))


class _LabelParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.req_start = 0

    # In "values" context the keywords in/notin are ordinary identifiers.
    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def peek_kind(self, values: bool = True) -> str:
        kind = self.tokens[self.pos].kind
        if values and kind in (_T_IN, _T_NOTIN):
            return _T_IDENT
        return kind

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        if tok.kind != _T_EOS:
            self.pos += 1
        return tok

    def selector_error(self, reason: str, tok: _Token) -> SelectorError:
        return SelectorError(
            f"unable to parse selector {_short(self.text)}: {reason}",
            selector=self.text,
            position=tok.start,
        )

    def requirement_error(self, reason: str, tok: _Token, end: int | None = None) -> SelectorError:
        if end is None:
            end = tok.end
        fragment = self.text[self.req_start : max(end, self.req_start)].strip()
        return SelectorError(
            f"unable to parse requirement: {_short(fragment)}: {reason}",
            selector=self.text,
            position=tok.start,
        )

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok = self.peek()
            kind = self.peek_kind()
            if kind == _T_EOS:
                return requirements
            if kind in (_T_IDENT, "!"):
                requirements.append(self.parse_requirement())
            elif kind in ("=", "==", "!=", ">", "<", "("):
                self.req_start = tok.start
                end = next((t.start for t in self.tokens[self.pos :] if t.kind in (",", _T_EOS)))
                raise self.requirement_error(f'missing label key before "{tok.text}"', tok, end)
            else:
                raise self.selector_error(
                    f'found {tok.describe()} at position {tok.start}, expected "!", a label key, or end of string',
                    tok,
                )
            after = self.take()
            if after.kind == _T_EOS:
                return requirements
            if after.kind != ",":
                raise self.selector_error(
                    f'found {after.describe()} at position {after.start}, expected "," or end of string', after
                )
            nxt = self.peek()
            if nxt.kind == _T_EOS:
                raise self.selector_error(
                    f'expected a requirement after "," at position {after.start}, found end of string', nxt
                )

    def parse_requirement(self) -> Requirement:
        first = self.peek()
        self.req_start = first.start
        negated = False
        if first.kind == "!":
            self.take()
            negated = True
        tok = self.take()
        if tok.kind not in (_T_IDENT, _T_IN, _T_NOTIN):
            if negated:
                raise self.requirement_error(f'expected a label key after "!", found {tok.describe()}', tok)
            raise self.requirement_error(f"expected a label key, found {tok.describe()}", tok)
        key = tok.text
        errs = validate_label_key(key)
        if errs:
            raise self.requirement_error(f"invalid label key {_short(key)}: {'; '.join(errs)}", tok)
        nxt_kind = self.peek_kind()
        if nxt_kind in (_T_EOS, ","):
            return Requirement(key, DOES_NOT_EXIST if negated else EXISTS, ())
        if negated:
            nxt = self.peek()
            raise self.requirement_error(
                f'"!{key}" (does not exist) takes no operator or value, found {nxt.describe()}', nxt
            )

        op_tok = self.take()
        op = _BINARY_TOKENS.get(op_tok.kind)
        if op is None:
            raise self.requirement_error(
                f"unknown operator {op_tok.describe()}, expected one of: {_OPERATOR_LIST}", op_tok
            )
        if op in _SET_OPS:
            values, last = self.parse_value_set(op_tok)
        else:
            values, last = self.parse_exact_value(op_tok)
        for value in values:
            errs = validate_label_value(value)
            if errs:
                raise self.requirement_error(f"invalid label value {_short(value)}: {'; '.join(errs)}", last)
        if op in _NUMERIC_OPS and _parse_int64(values[0]) is None:
            raise self.requirement_error(
                f'value {_short(values[0])} for "{op_tok.text}" must be an integer', last
            )
        return Requirement(key, op, tuple(sorted(set(values))))

    def parse_value_set(self, op_tok: _Token) -> tuple[list[str], _Token]:
        open_tok = self.take()
        if open_tok.kind != "(":
            raise self.requirement_error(
                f'expected "(" after "{op_tok.text}", found {open_tok.describe()}', open_tok
            )
        values: list[str] = []
        expect_value = True  # at the start or just after a comma
        while True:
            tok = self.take()
            kind = _T_IDENT if tok.kind in (_T_IN, _T_NOTIN) else tok.kind
            if kind == ")":
                if expect_value:  # "()", "(a,)" and "(,)" hold the empty value
                    values.append("")
                return values, tok
            if kind == _T_EOS:
                raise self.requirement_error('missing ")"', tok)
            if kind == ",":
                if expect_value:  # "(,a)" and "(a,,b)" hold the empty value
                    values.append("")
                expect_value = True
                continue
            if kind == _T_IDENT and expect_value:
                values.append(tok.text)
                expect_value = False
                continue
            expected = 'a value, "," or ")"' if expect_value else '"," or ")"'
            raise self.requirement_error(f"found {tok.describe()}, expected {expected}", tok)

    def parse_exact_value(self, op_tok: _Token) -> tuple[list[str], _Token]:
        kind = self.peek_kind()
        if kind in (_T_EOS, ","):
            return [""], op_tok  # "key=" means the empty value
        tok = self.take()
        if kind != _T_IDENT:
            raise self.requirement_error(
                f'found {tok.describe()}, expected a value after "{op_tok.text}"', tok
            )
        return [tok.text], tok


@functools.lru_cache(maxsize=1024)
def _parse_label_selector_cached(text: str) -> LabelSelector:
    requirements = _LabelParser(text).parse()
    if not requirements:
        return _EVERYTHING
    return LabelSelector(requirements)


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a label selector string (``labelSelector=...``).

    An empty (or all-whitespace, or None) string matches everything.  Raises
    SelectorError, e.g. ``unable to parse requirement: "a in (b": missing ")"``.
    Results are cached; the returned selector is immutable.
    """
    if text is None:
        return _EVERYTHING
    if not isinstance(text, str):
        raise SelectorError(f"label selector must be a string, not {type(text).__name__}")
    return _parse_label_selector_cached(text)


# --- metav1.LabelSelector and plain maps -------------------------------------

_EXPRESSION_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def _check_label(path: str, key: Any, value: Any = _MISSING) -> None:
    errs = validate_label_key(key)
    if errs:
        raise SelectorError(f"{path}: invalid label key {_short(key)}: {'; '.join(errs)}", path=path)
    if value is not _MISSING:
        errs = validate_label_value(value)
        if errs:
            raise SelectorError(
                f"{path}: invalid label value {_short(value)}: {'; '.join(errs)}", path=path
            )


def selector_from_dict(sel: Mapping[str, Any] | None, *, null_matches_nothing: bool = False) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` dict (matchLabels + matchExpressions).

    ``matchLabels`` entries and ``matchExpressions`` are ANDed.  Expression
    operators are ``In``, ``NotIn``, ``Exists`` and ``DoesNotExist``
    (case-sensitive); In/NotIn need at least one value, Exists/DoesNotExist
    take none.  Keys and values are validated as labels.  Errors name the
    offending place, e.g. ``matchExpressions[0].operator: "Foo" is not a
    valid label selector operator``.

    ``None`` and ``{}`` (or both parts empty) match everything.  Note that
    Kubernetes' LabelSelectorAsSelector treats a *null* selector as matching
    nothing (e.g. a PodDisruptionBudget or NetworkPolicy peer without one);
    callers wanting that pass ``null_matches_nothing=True``.
    """
    if sel is None:
        return _NOTHING if null_matches_nothing else _EVERYTHING
    if not isinstance(sel, Mapping):
        raise SelectorError(f"label selector must be an object, not {type(sel).__name__}")
    match_labels = sel.get("matchLabels")
    expressions = sel.get("matchExpressions")
    requirements: list[Requirement] = []

    if match_labels is not None:
        if not isinstance(match_labels, Mapping):
            raise SelectorError("matchLabels: must be an object of label key to value", path="matchLabels")
        for key, value in match_labels.items():
            path = f"matchLabels[{key}]" if isinstance(key, str) else "matchLabels"
            _check_label(path, key, value)
            requirements.append(Requirement(key, EQUALS, (value,)))

    if expressions is not None:
        if not isinstance(expressions, list):
            raise SelectorError("matchExpressions: must be a list", path="matchExpressions")
        for i, expr in enumerate(expressions):
            path = f"matchExpressions[{i}]"
            if not isinstance(expr, Mapping):
                raise SelectorError(f"{path}: must be an object", path=path)
            key = expr.get("key")
            if key is None or key == "":
                raise SelectorError(f"{path}.key: label key must be specified", path=f"{path}.key")
            _check_label(f"{path}.key", key)
            raw_op = expr.get("operator")
            op = _EXPRESSION_OPERATORS.get(raw_op) if isinstance(raw_op, str) else None
            if op is None:
                raise SelectorError(
                    f"{path}.operator: {_short(raw_op if raw_op is not None else '')} is not a valid label "
                    f"selector operator (expected one of: In, NotIn, Exists, DoesNotExist)",
                    path=f"{path}.operator",
                )
            raw_values = expr.get("values")
            if raw_values is None:
                raw_values = []
            if not isinstance(raw_values, list):
                raise SelectorError(f"{path}.values: must be a list of strings", path=f"{path}.values")
            for j, value in enumerate(raw_values):
                errs = validate_label_value(value)
                if errs:
                    raise SelectorError(
                        f"{path}.values[{j}]: invalid label value {_short(value)}: {'; '.join(errs)}",
                        path=f"{path}.values[{j}]",
                    )
            values = tuple(sorted(set(raw_values)))
            problems = _requirement_problems(key, op, values)
            if problems:
                raise SelectorError(
                    f"{path}.values: {problems[0]} (operator {raw_op})", path=f"{path}.values"
                )
            requirements.append(Requirement(key, op, values))

    if not requirements:
        return _EVERYTHING
    return LabelSelector(requirements)


def selector_from_map(m: Mapping[str, str] | None, *, validate: bool = True) -> LabelSelector:
    """Selector requiring every ``key: value`` of a plain map (labels.SelectorFromSet).

    Used for ``map[string]string`` selectors such as a Service's
    ``spec.selector`` or a ReplicationController's ``spec.selector``.  A None
    or empty map matches everything; the *caller* decides what an absent
    selector means for its resource (the endpoints controllers, for instance,
    manage no endpoints at all for a Service without ``spec.selector``).
    With ``validate`` (default) keys and values are checked as labels and
    SelectorError is raised for invalid ones.
    """
    if not m:
        return _EVERYTHING
    if not isinstance(m, Mapping):
        raise SelectorError(f"selector must be an object of label key to value, not {type(m).__name__}")
    requirements = []
    for key, value in m.items():
        if validate:
            _check_label(f"selector[{key}]" if isinstance(key, str) else "selector", key, value)
        requirements.append(Requirement(key, EQUALS, (value,)))
    return LabelSelector(requirements)


# ---------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------

_META_FIELDS = {"metadata.name", "metadata.namespace"}

FIELD_SELECTORS: dict[str, set[str]] = {
    "pods": _META_FIELDS
    | {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "services": _META_FIELDS | {"spec.clusterIP", "spec.type"},
    "nodes": _META_FIELDS | {"spec.unschedulable"},
    "namespaces": _META_FIELDS | {"status.phase"},
    "endpoints": set(_META_FIELDS),
    "endpointslices": _META_FIELDS | {"addressType"},
    "deployments": set(_META_FIELDS),
    "replicasets": _META_FIELDS | {"status.replicas"},
    "leases": set(_META_FIELDS),
}
"""Fields accepted in ``fieldSelector`` per resource plural."""

FIELD_DEFAULTS: dict[str, str] = {
    "spec.hostNetwork": "false",
    "spec.unschedulable": "false",
    "status.replicas": "0",
}
"""Value reported for a missing field whose Go type is bool/int (its zero
value); any other missing field reads as the empty string."""


_DEFAULT_FIELDS = frozenset(_META_FIELDS)


def supported_fields(resource: str) -> set[str] | frozenset[str]:
    """``FIELD_SELECTORS[resource]``, or just metadata.name/metadata.namespace
    for resources not listed (the generic registry default)."""
    return FIELD_SELECTORS.get(resource, _DEFAULT_FIELDS)


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` for use as a field selector value."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _field_string(value: Any) -> str | None:
    """How Kubernetes would render a scalar field value; None for non-scalars."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _resolve_field(obj: Any, path: tuple[str, ...], default: str) -> str | None:
    current = obj
    for part in path:
        if not isinstance(current, Mapping):
            return default
        current = current.get(part)
        if current is None:
            return default
    return _field_string(current)


class FieldSelector:
    """An immutable conjunction of ``field = value`` / ``field != value`` terms."""

    __slots__ = ("_requirements", "_compiled")

    def __init__(self, requirements: Iterable[tuple[str, str, str]] = ()) -> None:
        reqs = []
        for field, op, value in requirements:
            if op == "==":
                op = "="
            if op not in ("=", "!="):
                raise SelectorError(f"field selector on {field!r}: unsupported operator {op!r}")
            reqs.append((field, op, value))
        self._requirements: tuple[tuple[str, str, str], ...] = tuple(reqs)
        self._compiled = tuple(
            (tuple(field.split(".")), op == "=", value, FIELD_DEFAULTS.get(field, ""))
            for field, op, value in reqs
        )

    @property
    def requirements(self) -> list[tuple[str, str, str]]:
        """``(field, op, value)`` terms in input order; ``op`` is ``"="``
        (for ``=`` and ``==``) or ``"!="``; values are unescaped."""
        return list(self._requirements)

    @property
    def empty(self) -> bool:
        return not self._requirements

    def fields(self) -> set[str]:
        return {field for field, _, _ in self._requirements}

    def exact_match(self, field: str) -> str | None:
        """The value ``field`` must equal for anything to match, or None
        (fields.Selector.RequiresExactMatch).  E.g. a store can serve
        ``metadata.namespace=ns`` from its per-namespace index."""
        for f, op, value in self._requirements:
            if f == field and op == "=":
                return value
        return None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for path, equal, want, default in self._compiled:
            have = _resolve_field(obj, path, default)
            if (have == want) != equal:
                return False
        return True

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        return iter(self._requirements)

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self._requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return sorted(self._requirements) == sorted(other._requirements)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._requirements)))


_EMPTY_FIELD_SELECTOR = FieldSelector(())
_FIELD_OPERATORS = ("!=", "==", "=")


def _split_terms(text: str) -> list[tuple[int, str]]:
    """Split on commas not escaped by a backslash; keep each term's offset."""
    terms = []
    start = 0
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append((start, text[start:i]))
            start = i + 1
    terms.append((start, text[start:]))
    return terms


def _unescape_field_value(text: str, value: str, offset: int) -> str:
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    out = []
    escaped = False
    for i, ch in enumerate(value):
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(
                    f"invalid field selector {_short(text)}: invalid escape sequence \\{ch} "
                    f"at position {offset + i - 1} (only \\\\, \\, and \\= are allowed)",
                    selector=text,
                    position=offset + i - 1,
                )
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(
                f"invalid field selector {_short(text)}: unescaped character {ch!r} in value "
                f"at position {offset + i} (write \\{ch})",
                selector=text,
                position=offset + i,
            )
        else:
            out.append(ch)
    if escaped:
        raise SelectorError(
            f"invalid field selector {_short(text)}: invalid escape sequence: value ends with a "
            f"single backslash at position {offset + len(value) - 1}",
            selector=text,
            position=offset + len(value) - 1,
        )
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def _parse_field_selector_cached(text: str) -> FieldSelector:
    requirements = []
    for start, term in _split_terms(text):
        if term == "":
            continue
        for i in range(len(term)):
            op = next((o for o in _FIELD_OPERATORS if term.startswith(o, i)), None)
            if op is not None:
                break
        else:
            raise SelectorError(
                f"invalid selector: {_short(text)}; can't understand {_short(term)} at position {start} "
                f"(expected field=value, field==value or field!=value)",
                selector=text,
                position=start,
            )
        field = term[:i].strip()
        if not field:
            raise SelectorError(
                f"invalid field selector {_short(text)}: missing field name before {op!r} "
                f"at position {start + i}",
                selector=text,
                position=start + i,
            )
        value_offset = start + i + len(op)
        value = _unescape_field_value(text, term[i + len(op) :], value_offset)
        requirements.append((field, op, value))
    if not requirements:
        return _EMPTY_FIELD_SELECTOR
    return FieldSelector(requirements)


def parse_field_selector(text: str | None, allowed: set[str] | frozenset[str] | None = None) -> FieldSelector:
    """Parse a field selector string (``fieldSelector=...``).

    Terms are ``field=value``, ``field==value`` or ``field!=value`` separated
    by commas; in values ``\\,``, ``\\=`` and ``\\\\`` stand for ``,``, ``=``
    and ``\\`` (any other escape, or a bare ``,``/``=`` in a value, is an
    error).  Empty terms are ignored and surrounding whitespace of the field
    name is dropped; the value is taken verbatim.  An empty string (or None)
    matches everything.  With ``allowed``, a field outside it raises
    ``SelectorError("field label not supported: <field>")``.
    """
    if text is None:
        return _EMPTY_FIELD_SELECTOR
    if not isinstance(text, str):
        raise SelectorError(f"field selector must be a string, not {type(text).__name__}")
    selector = _parse_field_selector_cached(text)
    if allowed is not None:
        for field, _, _ in selector._requirements:
            if field not in allowed:
                raise SelectorError(f"field label not supported: {field}", selector=text)
    return selector
