"""JSON payload and result encoding.

On the wire and in storage a payload is JSON text. Python's json module keeps integers of
any size exact and floats as shortest-repr doubles, so decode(encode(x)) == x for every JSON
value. NaN and Infinity are not JSON: they are refused rather than written as literals
other languages cannot parse.
"""

import json
import math
from typing import Any

from giobba_server.domain.errors import InvalidArgument

JsonObject = dict[str, Any]

MAX_PAYLOAD_BYTES = 15 * 1024 * 1024  # under MongoDB's 16 MiB document limit, with room


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: valid JSON syntax, but no double holds it
        raise ValueError(f"number {text} is out of the range of a double")
    return value


def parse_object(text: str, field: str, max_bytes: int = MAX_PAYLOAD_BYTES) -> JsonObject:
    """Parse JSON object text; empty text is `{}`."""
    if not text:
        return {}
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(
            field, f"is {size} bytes, over the {max_bytes / 2**20:g} MiB limit ({max_bytes} bytes)"
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:  # valid JSON, but deeper than a recursive parser can follow
        raise InvalidArgument(
            field, "nests objects/arrays deeper than the JSON parser follows (about 900 levels)"
        ) from None
    except ValueError as exc:
        raise InvalidArgument(field, f"is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidArgument(field, f"must be a JSON object, got {type(value).__name__}")
    try:  # an escaped lone surrogate (\ud800) parses, but no UTF-8 text can carry it
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(field, "holds a lone UTF-16 surrogate, which is not text") from None
    return value


def dump(value: JsonObject) -> str:
    """Canonical compact text; refuses NaN/Infinity."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def check_finite(value: Any, field: str) -> None:
    """Raise if a value holds NaN or Infinity anywhere (they have no JSON form)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(field, f"holds {value}, which JSON cannot carry")
    if isinstance(value, dict):
        for item in value.values():
            check_finite(item, field)
    elif isinstance(value, list):
        for item in value:
            check_finite(item, field)
