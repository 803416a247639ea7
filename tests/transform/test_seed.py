"""The seed's transformer, twice: as a YAML mapping and as a class, with the same results.

The seed turns an external resource into an internal one: a prefixed id, a
sanitised name, type and status enumerations mapped with an UNKNOWN fallback,
metadata keys camel-cased with their values sanitised, timestamps parsed, and
a batch form.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
import pytest

from interlink.transform import (
    KEY_CASES,
    Mapping,
    ModelTransformer,
    Transformer,
    TransformError,
    make_cleaner,
    make_converter,
)


class InternalResource(pydantic.BaseModel):
    id: str
    name: str
    type: str
    status: str
    metadata: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime


SEED_YAML = """
name: resources
output: tests.transform.test_seed:InternalResource
fields:
  id: {source: id, convert: str, template: "ext_{value}"}
  name:
    source: name
    clean: [printable, collapse_spaces, {allow: "A-Za-z0-9 .,&'-"}, {max_length: 40}]
  type:
    source: type
    clean: [strip, lower]
    map:
      values: {customer: CUSTOMER, supplier: SUPPLIER, partner: PARTNER}
      default: UNKNOWN
    default: UNKNOWN
  status:
    source: status
    clean: [strip, lower]
    map:
      values: {active: ACTIVE, inactive: INACTIVE, suspended: SUSPENDED}
      default: UNKNOWN
    default: UNKNOWN
  metadata:
    source: metadata
    default: {}
    keys: {case: camel}
    values: {convert: str, clean: [printable, collapse_spaces, {max_length: 100}]}
  created_at: {source: createdAt, convert: datetime}
  updated_at: {source: updated, convert: {datetime: {unit: ms}}}
"""


class ExternalResource(pydantic.BaseModel):
    id: int | str
    name: str
    type: str | None = None
    status: str | None = None
    metadata: dict[str, Any] = {}
    createdAt: str
    updated: int


_to_str = make_converter("str")
_name = [
    make_cleaner(n, o)
    for n, o in [
        ("printable", None),
        ("collapse_spaces", None),
        ("allow", {"chars": "A-Za-z0-9 .,&'-"}),
        ("max_length", {"length": 40}),
    ]
]
_value = [
    make_cleaner("printable"),
    make_cleaner("collapse_spaces"),
    make_cleaner("max_length", {"length": 100}),
]
_camel = KEY_CASES["camel"]
_iso = make_converter("datetime")
_ms = make_converter("datetime", {"unit": "ms"})
TYPES = {"customer": "CUSTOMER", "supplier": "SUPPLIER", "partner": "PARTNER"}
STATUSES = {"active": "ACTIVE", "inactive": "INACTIVE", "suspended": "SUSPENDED"}


def _clean(text: str, steps: list[Any]) -> str:
    for step in steps:
        text = step(text)
    return text


class SeedTransformer(ModelTransformer[ExternalResource, InternalResource]):
    """The same transformation written as code around interlink's own steps."""

    input_model = ExternalResource
    output_model = InternalResource

    def map(self, item: ExternalResource) -> dict[str, Any]:
        return {
            "id": f"ext_{item.id}",
            "name": _clean(item.name, _name),
            "type": TYPES.get((item.type or "").strip().lower(), "UNKNOWN"),
            "status": STATUSES.get((item.status or "").strip().lower(), "UNKNOWN"),
            "metadata": {
                _camel(key): _clean(_to_str(value), _value) for key, value in item.metadata.items()
            },
            "created_at": _iso(item.createdAt),
            "updated_at": _ms(item.updated),
        }


def external(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": 1042,
        "name": "  ACME\u200b  Trading\t& Co. <script>  ",
        "type": " Customer ",
        "status": "active",
        "metadata": {
            "account_manager": "  Jane \n Doe ",
            "credit_limit": 5000,
            "RegionCode": "eu-west",
        },
        "createdAt": "2024-03-10T01:30:00-05:00",
        "updated": 1714561200123,
    }
    record.update(changes)
    return record


EXPECTED = InternalResource(
    id="ext_1042",
    name="ACME Trading & Co. script",
    type="CUSTOMER",
    status="ACTIVE",
    metadata={"accountManager": "Jane Doe", "creditLimit": "5000", "regionCode": "eu-west"},
    created_at=dt.datetime(2024, 3, 10, 6, 30, tzinfo=dt.UTC),
    updated_at=dt.datetime(2024, 5, 1, 11, 0, 0, 123000, tzinfo=dt.UTC),
)


@pytest.fixture(params=["yaml", "class"])
def seed(request: pytest.FixtureRequest) -> Transformer[Any, InternalResource]:
    if request.param == "yaml":
        return Mapping.from_yaml(SEED_YAML, source="seed.yaml")
    return SeedTransformer(name="resources")


def test_the_seed_example_maps_one_resource(seed: Transformer[Any, InternalResource]) -> None:
    out = seed.transform(external())
    assert out == EXPECTED
    assert out.created_at.tzinfo is dt.UTC


def test_unknown_types_and_statuses_fall_back_to_unknown(
    seed: Transformer[Any, InternalResource],
) -> None:
    out = seed.transform(external(type="reseller", status=None))
    assert (out.type, out.status) == ("UNKNOWN", "UNKNOWN")


def test_the_seed_batch_keeps_going_past_bad_records(
    seed: Transformer[Any, InternalResource],
) -> None:
    records = [external(id=n) for n in range(10)]
    records[3] = external(createdAt="last tuesday")
    records[7] = {k: v for k, v in external().items() if k != "name"}
    result = seed.transform_batch(records)
    assert [index for index, _ in result.ok] == [0, 1, 2, 4, 5, 6, 8, 9]
    assert [out.id for out in result.outputs] == [f"ext_{n}" for n in (0, 1, 2, 4, 5, 6, 8, 9)]
    assert [(e.index, e.path) for e in result.errors] == [
        (3, "created_at" if isinstance(seed, Mapping) else ""),
        (7, "name"),
    ]
    assert seed.stats.failed == 2
    assert seed.stats.transformed == 8


def test_the_class_form_names_input_and_output_fields_that_do_not_validate() -> None:
    seed = SeedTransformer()
    with pytest.raises(TransformError) as caught:
        seed.transform(external(updated="soon"))
    error = caught.value
    assert (error.path, error.transformer) == ("updated", "SeedTransformer")
    assert error.reason.startswith("the input does not validate: Input should be a valid integer")
    assert error.value == "'soon'"

    class Broken(SeedTransformer):
        def map(self, item: ExternalResource) -> dict[str, Any]:
            return {**super().map(item), "created_at": "not a time"}

    with pytest.raises(TransformError) as caught:
        Broken().transform(external())
    assert caught.value.path == "created_at"
    assert caught.value.reason.startswith("the output does not validate")


def test_an_exception_in_map_fails_that_record_only() -> None:
    class Picky(ModelTransformer[dict[str, Any], dict[str, Any]]):
        def map(self, item: dict[str, Any]) -> dict[str, Any]:
            return {"total": item["net"] + item["tax"]}

    picky = Picky()
    result = picky.transform_batch([{"net": 1, "tax": 2}, {"net": 1}, {"net": "1", "tax": 2}])
    assert result.outputs == [{"total": 3}]
    assert [(e.index, e.path, e.reason) for e in result.errors] == [
        (1, "", "KeyError: 'tax'"),
        (2, "", 'TypeError: can only concatenate str (not "int") to str'),
    ]
    assert isinstance(picky, Transformer)
    assert picky.name == "Picky"
