"""Bodies, headers and queue names: what ``publish`` accepts and how it comes back."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import types
import uuid

import pydantic
import pytest

from interlink.core.errors import ConfigError
from interlink.messaging import Message, decode_body, encode_body, new_message_id
from interlink.messaging._message import (
    JSON,
    OCTET_STREAM,
    validate_headers,
    validate_queue_name,
)


class Colour(enum.Enum):
    RED = "red"


class Order(pydantic.BaseModel):
    id: int
    placed: dt.datetime


def test_bytes_travel_as_they_are() -> None:
    assert encode_body(b"\x00\xff") == (b"\x00\xff", OCTET_STREAM)
    assert encode_body(bytearray(b"ab")) == (b"ab", OCTET_STREAM)
    assert encode_body(memoryview(b"cd")) == (b"cd", OCTET_STREAM)
    assert decode_body(b"\x00\xff", OCTET_STREAM) == b"\x00\xff"


def test_other_bodies_become_compact_json_and_come_back_parsed() -> None:
    body, ctype = encode_body({"total": 12, "name": "café"})
    assert ctype == JSON
    assert body == '{"total":12,"name":"café"}'.encode()
    assert decode_body(body, ctype) == {"total": 12, "name": "café"}


def test_common_python_values_are_encoded_as_their_json_forms() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ident = uuid.UUID(int=7)
    body, _ = encode_body(
        {
            "when": when,
            "day": when.date(),
            "id": ident,
            "amount": decimal.Decimal("12.50"),
            "colour": Colour.RED,
            "tags": ("a",),
            "order": Order(id=1, placed=when),
        }
    )
    assert decode_body(body, JSON) == {
        "when": "2026-01-02T03:04:05+00:00",
        "day": "2026-01-02",
        "id": str(ident),
        "amount": "12.50",
        "colour": "red",
        "tags": ["a"],
        "order": {"id": 1, "placed": "2026-01-02T03:04:05Z"},
    }


def test_an_unencodable_body_is_a_config_error_naming_its_type() -> None:
    with pytest.raises(ConfigError, match="cannot publish a dict body: object is not"):
        encode_body({"x": object()})
    # NaN and infinity are not JSON: another consumer's parser would refuse them
    with pytest.raises(ConfigError, match="cannot publish a dict body: Out of range float"):
        encode_body({"x": float("nan")})


def test_message_decode_uses_its_content_type() -> None:
    msg = Message(id="1", queue="q", body=b'{"a":1}')
    assert msg.decode() == {"a": 1}
    assert Message(id="1", queue="q", body=b"raw", content_type=OCTET_STREAM).decode() == b"raw"


def test_message_ids_are_unique_hex() -> None:
    ids = {new_message_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize("name", ["", " ", "a b", "tab\t", "x" * 201, 5, None])
def test_bad_queue_names_are_refused(name: object) -> None:
    with pytest.raises(ConfigError):
        validate_queue_name(name)


def test_a_good_queue_name_passes() -> None:
    assert validate_queue_name("payments.events") == "payments.events"


def test_headers_must_be_strings() -> None:
    assert validate_headers(None) == {}
    assert validate_headers({"traceparent": "00-ab-cd-01"}) == {"traceparent": "00-ab-cd-01"}
    with pytest.raises(ConfigError, match="header 'n' must be a string, got int"):
        validate_headers({"n": 1})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="non-empty strings"):
        validate_headers({"": "x"})
    with pytest.raises(ConfigError, match="must be a mapping"):
        validate_headers([("a", "b")])  # type: ignore[arg-type]
    # Any mapping, not only a dict (the dict path is checked in C, the rest in a loop).
    assert validate_headers(types.MappingProxyType({"a": "b"})) == {"a": "b"}
