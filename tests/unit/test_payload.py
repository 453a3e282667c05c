"""Payload validation: what JSON cannot carry is refused, naming the field."""

import pytest

from giobba_client import InvalidArgument as ClientInvalidArgument
from giobba_client._convert import dump_json
from giobba_server.domain.errors import InvalidArgument
from giobba_server.domain.payload import parse_object


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": NaN}', "not valid JSON"),
        ('{"a": -Infinity}', "not valid JSON"),
        ('{"a": 1e400}', "out of the range of a double"),
        ('{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        ('{"\\udfff": 1}', "lone UTF-16 surrogate"),
        ("[1]", "must be a JSON object"),
        ("{" * 100_000, "not valid JSON"),
    ],
)
def test_refused(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason) as caught:
        parse_object(text, "task.payload")
    assert str(caught.value).startswith("task.payload: ")


def test_exact_values_pass() -> None:
    text = '{"big": 123456789012345678901234567890, "f": 0.1, "u": "✓ \\ud83d\\ude00", "n": null}'
    value = parse_object(text, "task.payload")
    assert value["big"] == 123456789012345678901234567890
    assert value["u"] == "✓ 😀"


@pytest.mark.parametrize("payload", [{"a": "\ud800"}, {"a": float("inf")}, {"a": object()}])
def test_sdk_refuses_before_sending(payload: dict[str, object]) -> None:
    with pytest.raises(ClientInvalidArgument, match=r"^payload: "):
        dump_json(payload, "payload")
