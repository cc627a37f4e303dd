"""JSON from untrusted request bodies, parsed so that nothing downstream can choke on it. Pure.

The standard library's ``json.loads`` accepts what later code cannot handle: nesting deep
enough to raise ``RecursionError`` (in the parser, or later when the value is re-encoded for
the ledger), lone UTF-16 surrogates (``"\\ud800"``) that make every UTF-8 encoder raise
``UnicodeEncodeError``, ``NaN``/``Infinity``/``1e999`` that strict JSON encoders refuse, and
integers too big to become a float (``OverflowError`` deep inside scoring).
``loads`` refuses all of them up front with a :class:`JSONInputError` whose message is the
reason a client can act on.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deeper than any payload we accept (an Alertmanager group or a Telegram update is < 10).
MAX_DEPTH = 64
#: Integers beyond 64 bits mean nothing to us, and overflow once converted to float.
MAX_INT = 2**63 - 1

# A \uD800–\uDFFF escape; only these can smuggle a surrogate into strictly decoded UTF-8 text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JSONInputError(ValueError):
    """The body is not JSON we accept; the message says why (for a 400)."""


def _no_constants(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONInputError(f"number {text[:20]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise JSONInputError(f"integer {text[:20]}… is out of range (64-bit)")
    return value


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``raw`` (UTF-8 when bytes) or raise :class:`JSONInputError` with the reason."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")  # strict: also refuses encoded surrogates
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"body is not valid UTF-8 (byte {exc.start})") from None
    else:
        text = raw
    try:
        value = json.loads(
            text, parse_constant=_no_constants, parse_float=_finite, parse_int=_bounded_int
        )
    except RecursionError:
        raise JSONInputError(f"JSON nested deeper than {max_depth} levels") from None
    except JSONInputError:
        raise
    except ValueError as exc:
        raise JSONInputError(f"body is not valid JSON: {exc}") from None
    check_value(value, max_depth=max_depth, surrogates=bool(_SURROGATE_ESCAPE.search(text)))
    return value


def check_value(value: Any, *, max_depth: int = MAX_DEPTH, surrogates: bool = True) -> None:
    """Refuse nesting deeper than ``max_depth`` and (if ``surrogates``) lone surrogates.

    Iterative, so a hostile value cannot exhaust the stack while being checked.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise JSONInputError(f"JSON nested deeper than {max_depth} levels")
            for k, v in item.items():
                if surrogates:
                    _check_text(k)
                stack.append((v, depth + 1))
        elif isinstance(item, list):
            if depth > max_depth:
                raise JSONInputError(f"JSON nested deeper than {max_depth} levels")
            stack.extend((v, depth + 1) for v in item)
        elif surrogates and isinstance(item, str):
            _check_text(item)


def _check_text(s: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise JSONInputError(
            "a string holds a lone UTF-16 surrogate (e.g. \\ud800), which is not text"
        ) from None
