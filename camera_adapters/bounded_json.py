"""Parsing JSON that came from outside (a socket, a file from someone else) with every size bounded.

Python's :func:`json.loads` trusts its input: 30,000 nested brackets raise ``RecursionError``, an integer of
5,000 digits raises a bare ``ValueError``, ``2**70`` is accepted and later overflows an int64 array, ``NaN`` and
``Infinity`` are accepted though they are not JSON. :func:`loads` refuses all of these *as the caller's own
named error*, so a decoder turns any malformed input into one error class and nothing else:

- at most ``max_bytes`` bytes (checked before anything is decoded);
- UTF-8 only, and no lone surrogates in strings (they could not be written to a UTF-8 file later);
- integers within int64 (``-2**63 .. 2**63-1``); floats finite; no ``NaN``/``Infinity``;
- containers nested at most ``max_depth`` deep.
"""

from __future__ import annotations

import json
import math
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class _OutOfBounds(Exception):
    """Raised inside the JSON parser's hooks; turned into the caller's error."""


def _parse_int(text: str) -> int:
    if len(text) > 20:  # 2**63 has 19 digits; a sign makes 20
        raise _OutOfBounds(f"an integer of {len(text)} digits is out of the int64 range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _OutOfBounds(f"the integer {value} is out of the int64 range")
    return value


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise _OutOfBounds(f"a number written with {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfBounds(f"the number {text[:30]} is not finite")
    return value


def _parse_constant(name: str) -> Any:
    raise _OutOfBounds(f"{name} is not a JSON value")


def _check_tree(value: Any, max_depth: int) -> str | None:
    """What is wrong with a parsed value (too deep, a string that is not valid Unicode), or None."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds an invalid Unicode escape (a lone surrogate)"
            continue
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return f"containers nested more than {max_depth} deep"
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
    return None


def loads(
    data: bytes | bytearray | memoryview,
    *,
    max_bytes: int,
    error: type[Exception] = ValueError,
    what: str = "message",
    max_depth: int = 16,
) -> Any:
    """Parse UTF-8 JSON with every size bounded; anything wrong raises ``error`` (and nothing else does).

    Args:
        data: the raw bytes.
        max_bytes: refuse more bytes than this, before decoding.
        error: the exception class to raise (the caller's named error).
        what: names the input in the message ("header", "event message on 'events/cam0'").
        max_depth: the deepest nesting of objects and arrays allowed (1: a flat object).

    Raises:
        error: too large, not UTF-8, not JSON, out-of-range numbers, NaN/Infinity, too deep, bad strings.
    """
    view = memoryview(data)
    if view.nbytes > max_bytes:
        raise error(f"{what}: {view.nbytes} bytes, more than the {max_bytes} allowed")
    try:
        text = view.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} is not UTF-8") from None
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except _OutOfBounds as err:
        raise error(f"{what}: {err}") from None
    except RecursionError:
        raise error(f"{what}: JSON nested too deeply") from None
    except ValueError as err:  # json.JSONDecodeError and anything else the parser refuses
        raise error(f"{what} is not valid JSON ({str(err)[:200]})") from None
    problem = _check_tree(value, max_depth)
    if problem is not None:
        raise error(f"{what}: {problem}")
    return value
