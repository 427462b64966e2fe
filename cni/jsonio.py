"""JSON for the plugin's hot path, without importing the `json` package.

The plugin is executed once per pod start, so its imports are part of every pod's start-up.
`import json` costs about 12 ms on these machines (json.decoder imports `re` and compiles three
regular expressions at import time: `python -X importtime` shows it), more than the whole
reference Go plugin takes for an ADD. The C accelerator `_json` that `json` itself uses needs
none of that: we call its scanner and encoder directly. Behaviour matches `json.loads` /
`json.dumps(..., separators=(",", ":"))` for the types CNI uses (tests/unit/test_cni_jsonio.py
compares them).
"""
from __future__ import annotations

import _json

__all__ = ["loads", "dumps", "JSONError"]


class JSONError(ValueError):
    """Raised for text that is not one JSON document."""


class _ScannerContext:
    # The attributes the C scanner reads from its context (a json.JSONDecoder normally).
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name):
        raise JSONError(f"{name} is not valid JSON")


_scan_once = _json.make_scanner(_ScannerContext())
_WHITESPACE = " \t\n\r"


def loads(text: str | bytes):
    """Parse one JSON document (bytes are decoded as UTF-8)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise JSONError(f"not UTF-8: {e}") from None
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan_once(text, start)
    except StopIteration as e:
        raise JSONError(f"expecting a JSON value at character {e.value}") from None
    except SystemError:
        # The C scanner describes a syntax error with json.decoder.JSONDecodeError, but only
        # finds that class when json.decoder is already imported. Only bad input gets here.
        import json.decoder  # noqa: F401
        _ScannerContext.memo.clear()
        return loads(text)
    except ValueError as e:  # json.JSONDecodeError is a ValueError subclass
        raise JSONError(str(e)) from None
    finally:
        _ScannerContext.memo.clear()
    if text[end:].strip(_WHITESPACE):
        raise JSONError(f"extra data after the JSON value at character {end}")
    return value


def _default(o):
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# c_make_encoder(markers, default, encoder, indent, key_separator, item_separator, sort_keys,
#                skipkeys, allow_nan): the same call json.encoder makes for compact output.
_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, False)


def dumps(value) -> str:
    """Compact JSON text (ASCII, like json.dumps with separators=(",", ":"))."""
    return "".join(_encode(value, 0))
