"""The declarative Mapping: every setting does what docs/transform.md says, every mistake in a
spec is named with its file, line and key at load time, and a bad record fails alone."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlink.transform import (
    BatchResult,
    ItemError,
    Mapping,
    MappingError,
    Transformer,
    TransformError,
)


def mapping(yaml: str, **options: Any) -> Mapping[Any]:
    return Mapping.from_yaml(yaml, source="m.yaml", **options)


def failure(m: Mapping[Any], record: object) -> TransformError:
    with pytest.raises(TransformError) as caught:
        m.transform(record)
    return caught.value


# -- sources ------------------------------------------------------------------------------
def test_sources_are_plain_paths_or_any_jmespath_expression() -> None:
    m = mapping(
        """
fields:
  id: {}                                   # the field's own name
  short: customer.name                     # the short form: just the source
  city: {source: customer.address.city}
  first_sku: {source: "items[0].sku"}
  last_sku: {source: "items[-1].sku"}
  skus: {source: "items[*].sku"}
  count: {source: "length(items)"}
  dashed: {source: '"x-request-id"'}
  either: {source: "nickname || customer.name"}
  whole: {source: "@.customer.address"}
"""
    )
    record = {
        "id": 7,
        "x-request-id": "r1",
        "customer": {"name": "Ann", "address": {"city": "Oslo"}},
        "items": [{"sku": "A"}, {"sku": "B"}, {"sku": "C"}],
    }
    assert m.transform(record) == {
        "id": 7,
        "short": "Ann",
        "city": "Oslo",
        "first_sku": "A",
        "last_sku": "C",
        "skus": ["A", "B", "C"],
        "count": 3,
        "dashed": "r1",
        "either": "Ann",
        "whole": {"city": "Oslo"},
    }


@pytest.mark.parametrize(
    "record",
    [
        {"a": None},
        {},
        {"a": "not an object"},
        {"a": [1, 2]},
        {"a": {"b": []}},
        {"a": {"b": [{"c": 1}]}},  # b[1] does not exist
    ],
)
def test_a_path_through_something_else_than_an_object_is_missing_as_in_jmespath(
    record: dict[str, Any],
) -> None:
    m = mapping("fields: {x: {source: 'a.b[1].c', required: false}}")
    assert m.transform(record) == {"x": None}
    assert m.transform(record)["x"] is None
    import jmespath

    assert jmespath.search("a.b[1].c", record) is None  # the same answer as the interpreter


def test_falsy_values_are_values_not_missing() -> None:
    m = mapping("fields: {a: {}, b: {}, c: {}, d: {}}")
    assert m.transform({"a": 0, "b": "", "c": False, "d": []}) == {
        "a": 0,
        "b": "",
        "c": False,
        "d": [],
    }


# -- missing, defaults, const ---------------------------------------------------------------
def test_a_required_field_that_is_missing_or_null_fails_with_its_path() -> None:
    m = mapping("fields: {email: {source: customer.email}}")
    for record in ({"customer": {}}, {"customer": {"email": None}}, {}):
        error = failure(m, record)
        assert (error.path, error.reason, error.value) == ("email", "missing", "")
        assert str(error) == "email: missing"


def test_optional_fields_are_none_and_defaults_are_final_values() -> None:
    m = mapping(
        """
fields:
  email: {required: false}
  status:
    convert: int              # not run on the default
    default: UNKNOWN
  source: {const: shop}
"""
    )
    assert m.transform({}) == {"email": None, "status": "UNKNOWN", "source": "shop"}
    assert m.transform({"status": "3", "email": "a@b"}) == {
        "email": "a@b",
        "status": 3,
        "source": "shop",
    }


# -- steps, value maps, templates -----------------------------------------------------------
def test_converters_then_cleaners_run_in_order() -> None:
    m = mapping(
        """
fields:
  name: {clean: [collapse_spaces, upper, {max_length: 5}]}
  amount: {convert: {decimal: {places: 2}}}
  at: {convert: {datetime: {unit: ms}}}
"""
    )
    out = m.transform({"name": "  ada \t lovelace ", "amount": "12.345", "at": 1714561200000})
    assert out == {
        "name": "ADA L",
        "amount": Decimal("12.34"),
        "at": dt.datetime(2024, 5, 1, 11, 0, tzinfo=dt.UTC),
    }


def test_a_value_map_replaces_known_values_and_falls_back_to_its_default() -> None:
    m = mapping(
        """
fields:
  status:
    map: {values: {active: ACTIVE, inactive: INACTIVE, 1: ONE}, default: UNKNOWN}
  kind:
    map: {values: {a: A}}
"""
    )
    assert m.transform({"status": "active", "kind": "a"}) == {"status": "ACTIVE", "kind": "A"}
    assert m.transform({"status": "deleted", "kind": "a"})["status"] == "UNKNOWN"
    assert m.transform({"status": ["unhashable"], "kind": "a"})["status"] == "UNKNOWN"
    assert m.transform({"status": 1, "kind": "a"})["status"] == "ONE"
    error = failure(m, {"status": "active", "kind": "b"})
    assert (error.path, error.reason, error.value) == ("kind", "unmapped value", "'b'")
    assert failure(m, {"status": "active", "kind": {"x": 1}}).reason == "unmapped value"


def test_a_value_map_keyed_yes_or_off_matches_those_strings_too() -> None:
    """YAML 1.1 reads yes/no/on/off as booleans: the mapping keeps what the author wrote."""
    m = mapping("fields: {flag: {map: {values: {yes: Y, off: N, ~: NONE}}}}")
    assert m.transform({"flag": "yes"}) == {"flag": "Y"}
    assert m.transform({"flag": True}) == {"flag": "Y"}
    assert m.transform({"flag": "off"}) == {"flag": "N"}
    assert m.transform({"flag": "~"}) == {"flag": "NONE"}


def test_templates_fill_the_value_and_other_paths() -> None:
    m = mapping(
        """
fields:
  id: {source: id, template: "ext_{value}"}
  ref: {template: "{customer.id}/{id}"}
  padded: {source: n, template: "{value:>05}"}
  quoted: {source: name, template: "name={value!r}"}
"""
    )
    record = {"id": 42, "customer": {"id": "c9"}, "n": 7, "name": "x"}
    assert m.transform(record) == {
        "id": "ext_42",
        "ref": "c9/42",
        "padded": "00007",
        "quoted": "name='x'",
    }
    error = failure(m, {"id": 42, "customer": {}, "n": 7, "name": "x"})
    assert (error.path, error.reason) == ("ref", "missing {customer.id} for the template")


# -- shapes -------------------------------------------------------------------------------
NESTED = """
fields:
  customer:
    source: buyer
    fields:
      name: {clean: [strip]}
      email: {required: false}
  totals:
    source: "@"
    fields:
      net: {convert: int}
  lines:
    source: items
    items:
      fields:
        sku: {}
        qty: {source: quantity, convert: int}
  tags:
    items: {clean: [strip, lower]}
  metadata:
    keys: {case: camel, allow: [order_id, gift_note, bad_value]}
    values: {convert: str, clean: [strip]}
"""


def nested_record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "buyer": {"name": " Ann "},
        "net": "12",
        "items": [{"sku": "A", "quantity": "1"}, {"sku": "B", "quantity": 2}],
        "tags": [" VIP ", "new"],
        "metadata": {"order_id": 12, "gift_note": " hi ", "internal": "secret"},
    }
    record.update(changes)
    return record


def test_nested_objects_lists_and_free_form_keys() -> None:
    assert mapping(NESTED).transform(nested_record()) == {
        "customer": {"name": "Ann", "email": None},
        "totals": {"net": 12},
        "lines": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}],
        "tags": ["vip", "new"],
        "metadata": {"orderId": "12", "giftNote": "hi"},  # `internal` is not allowed
    }


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        ({"buyer": {}}, "customer.name", "missing"),
        ({"buyer": "Ann"}, "customer", "expected an object"),
        ({"items": [{"sku": "A", "quantity": 1}, {"sku": "B"}]}, "lines[1].qty", "missing"),
        ({"items": [{"sku": "A", "quantity": 1}, 5]}, "lines[1]", "expected an object"),
        ({"items": {"sku": "A"}}, "lines", "expected a list"),
        ({"tags": ["ok", 5]}, "tags[1]", "expected a string"),
        ({"metadata": {"order_id": [1]}}, "metadata.orderId", None),
        ({"metadata": "x"}, "metadata", "expected an object"),
    ],
)
def test_a_failure_inside_a_shape_names_the_whole_path(
    change: dict[str, Any], path: str, reason: str | None
) -> None:
    error = failure(mapping(NESTED), nested_record(**change))
    assert error.path == path
    if reason is not None:
        assert error.reason == reason


def test_two_keys_that_become_the_same_key_are_an_error_not_a_silent_overwrite() -> None:
    m = mapping("fields: {meta: {keys: {case: camel}}}")
    assert m.transform({"meta": {"user_id": 1}}) == {"meta": {"userId": 1}}
    error = failure(m, {"meta": {"user_id": 1, "userId": 2}})
    assert error.path == "meta"
    assert "two keys become 'userId'" in error.reason


# -- the output model -------------------------------------------------------------------------
class Address(pydantic.BaseModel):
    city: str


class Customer(pydantic.BaseModel):
    name: str
    address: Address
    since: dt.datetime | None = None


def test_the_output_can_be_a_pydantic_model_named_in_the_spec() -> None:
    m = mapping(
        """
output: tests.transform.test_mapping:Customer
fields:
  name: {source: n}
  address: {fields: {city: {source: c}}, source: "@"}
"""
    )
    assert m.output is Customer
    assert m.transform({"n": "Ann", "c": "Oslo"}) == Customer(
        name="Ann", address=Address(city="Oslo")
    )
    error = failure(m, {"n": "Ann", "c": 5})
    assert error.path == "address.city"
    assert error.reason.startswith("the output does not validate: Input should be a valid string")
    assert error.value == "5"


def test_a_target_field_the_output_model_lacks_is_a_load_error_with_a_hint() -> None:
    with pytest.raises(MappingError) as caught:
        mapping("fields:\n  name: {}\n  adress: {}\n", output=Customer)
    assert str(caught.value).startswith("m.yaml:3: fields.adress: unknown target field 'adress'")
    assert "did you mean 'address'?" in str(caught.value)
    with pytest.raises(MappingError, match=r"m.yaml:4: fields.address.fields.town: unknown target"):
        mapping("fields:\n  name: {}\n  address:\n    fields: {town: {}}\n", output=Customer)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("no.such.module:Model", "m.yaml:1: output: cannot import 'no.such.module'"),
        ("tests.transform.test_mapping:mapping", "is not a pydantic model"),
        ("just_a_name", "expected 'module:Model'"),
    ],
)
def test_an_output_that_is_not_a_model_is_a_load_error(output: str, message: str) -> None:
    with pytest.raises(MappingError, match=message.replace(".", r"\.")):
        mapping(f"output: {output}\nfields: {{a: {{}}}}\n")


# -- mistakes at load time ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "fields:\n  a: {sourc: x}\n",
            "m.yaml:2: fields.a.sourc: unknown key 'sourc' in a field (did you mean 'source'?)",
        ),
        (
            "fields:\n  a: {convert: integer}\n",
            "m.yaml:2: fields.a.convert: unknown converter 'integer'",
        ),
        (
            "fields:\n  a:\n    clean: [strip, uper]\n",
            "m.yaml:3: fields.a.clean[1]: unknown cleaner 'uper'",
        ),
        (
            "fields:\n  a: {source: 'a['}\n",
            "m.yaml:2: fields.a.source: not a valid JMESPath expression",
        ),
        (
            "fields:\n  a: {source: 'lenght(b)'}\n",
            "unknown JMESPath function lenght() (did you mean length()?)",
        ),
        (
            "fields:\n  a: {}\n  a: {}\n",
            "m.yaml:3: key 'a' is written twice in the same mapping (first on line 2)",
        ),
        ("fields:\n  a: {source: [x}\n", "m.yaml:2: not valid YAML"),
        ("- a\n- b\n", "a mapping is a mapping with a 'fields' key, not list"),
        ("name: x\n", "m.yaml:1: fields: a mapping needs 'fields'"),
        ("fields: {}\n", "fields: expected a mapping of target field names"),
        ("fieldz: {}\n", "unknown key 'fieldz' in a mapping (did you mean 'fields'?)"),
        ("fields:\n  1: {}\n", "m.yaml:2: fields.1: a target field name is a non-empty string"),
        ("fields:\n  a: 5\n", "m.yaml:2: fields.a: a field is a mapping of settings"),
        ("fields:\n  a: {source: ''}\n", "fields.a.source: expected a JMESPath expression"),
        ("fields:\n  a: {const: 1, source: b}\n", "'const' and 'source' cannot be used together"),
        (
            "fields:\n  a: {fields: {b: {}}, items: {}}\n",
            "'fields' and 'items' cannot be used together",
        ),
        ("fields:\n  a: {items: {}, convert: int}\n", "put 'convert' inside 'items'"),
        ("fields:\n  a: {keys: {case: camel}, clean: [strip]}\n", "put 'clean' inside 'values'"),
        (
            "fields:\n  a: {template: 'x{id}', convert: int}\n",
            "a field without a source has no value to convert",
        ),
        (
            "fields:\n  a: {template: 'fixed'}\n",
            "a template without a placeholder is a constant: use 'const'",
        ),
        ("fields:\n  a: {template: 'x{}'}\n", "an empty {} in a template"),
        (
            "fields:\n  a: {template: 'x{value}'}\n",
            "{value} is the field's own value, but the field has no source",
        ),
        ("fields:\n  a: {source: b, template: 'x{value!z}'}\n", "unknown conversion !z"),
        ("fields:\n  a: {source: b, template: 'x{value'}\n", "not a valid template"),
        ("fields:\n  a: {source: b, template: 'x{value:{w}}'}\n", "nested {} in a template"),
        ("fields:\n  a: {source: b, template: 'x{c..d}'}\n", "not a valid JMESPath expression"),
        (
            "fields:\n  a: {required: 'yes'}\n",
            "fields.a.required: expected true or false, found 'yes'",
        ),
        ("fields:\n  a: {required: true, default: 1}\n", "a field with a default is never missing"),
        ("fields:\n  a: {map: {b: c}}\n", "fields.a.map: expected {values: {from: to, ...}"),
        (
            "fields:\n  a: {map: {values: {}}}\n",
            "fields.a.map.values: expected a mapping of values",
        ),
        (
            "fields:\n  a: {map: {values: {b: c}, otherwise: d}}\n",
            "unknown key 'otherwise' in a value map",
        ),
        (
            "fields:\n  a: {keys: {case: camal}}\n",
            "unknown key case 'camal' (did you mean 'camel'?)",
        ),
        ("fields:\n  a: {keys: {allow: x}}\n", "fields.a.keys.allow: expected a list of key names"),
        ("fields:\n  a: {keys: [camel]}\n", "fields.a.keys: expected {case:"),
        ("fields:\n  a: {convert: []}\n", "fields.a.convert: expected at least one step"),
        (
            "fields:\n  a: {convert: {int: {}, str: {}}}\n",
            "a step is a name or a mapping of one name",
        ),
        ("fields:\n  a: {convert: [5]}\n", "a step is a name or a mapping of one name"),
        ("fields:\n  a: {convert: {5: {}}}\n", "a step name is a string"),
        ("fields:\n  a: {convert: {int: {minimum: 1}}}\n", "fields.a.convert: "),
        ("fields:\n  ? [a, b]\n  : {}\n", "a mapping key must be a plain value"),
        ("name: ''\nfields: {a: {}}\n", "name: expected a non-empty string"),
    ],
)
def test_every_mistake_in_a_spec_is_named_with_its_place(text: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        mapping(text)
    assert message in str(caught.value)


def test_a_mapping_file_names_itself_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "orders.yaml"
    path.write_text("name: orders\nfields:\n  id: {}\n  total:\n    convert: numbr\n")
    with pytest.raises(MappingError) as caught:
        Mapping.load(path)
    error = caught.value
    assert str(error).startswith(f"{path}:5: fields.total.convert: unknown converter 'numbr'")
    assert (error.source, error.line, error.key) == (str(path), 5, "fields.total.convert")
    with pytest.raises(MappingError, match="cannot read the mapping"):
        Mapping.load(tmp_path / "missing.yaml")
    path.write_text("fields:\n  id: {}\n")
    loaded = Mapping.load(path)
    assert loaded.name == "orders"  # the file's stem when the spec has no name
    assert loaded.transform({"id": 1}) == {"id": 1}


def test_from_dict_checks_the_same_way_without_lines() -> None:
    with pytest.raises(MappingError) as caught:
        Mapping.from_dict({"fields": {"a": {"convert": "nope"}}})
    assert str(caught.value).startswith("<dict>: fields.a.convert: unknown converter 'nope'")
    m = Mapping.from_dict({"fields": {"a": {"convert": "int"}}}, name="d")
    assert (m.name, m.transform({"a": "5"})) == ("d", {"a": 5})


def test_nothing_the_user_wrote_is_pasted_into_the_generated_code() -> None:
    evil = "x'); import os; ('"
    m = Mapping.from_dict({"fields": {evil: {"source": f'"{evil}"', "template": "{value}" + evil}}})
    assert m.transform({evil: 1}) == {evil: "1" + evil}
    assert "import os" not in m.source_code


# -- records, batches, counters ----------------------------------------------------------------
def test_a_record_that_is_not_an_object_fails_as_a_whole() -> None:
    m = mapping("fields: {a: {}}")
    for record in (None, 5, "text", [1]):
        error = failure(m, record)
        assert (error.path, error.reason) == ("", "expected an object")
        assert str(error).startswith("(record): expected an object (got ")


def test_a_batch_reports_records_3_and_7_and_maps_the_rest() -> None:
    m = mapping("name: orders\nfields:\n  id: {}\n  qty: {convert: int}\n")
    records: list[Any] = [{"id": n, "qty": str(n)} for n in range(10)]
    records[3] = {"id": 3, "qty": "three"}
    records[7] = {"qty": "7"}
    result = m.transform_batch(iter(records))  # any iterable: consumed once
    assert isinstance(result, BatchResult)
    assert [index for index, _ in result.ok] == [0, 1, 2, 4, 5, 6, 8, 9]
    assert result.outputs == [{"id": n, "qty": n} for n in (0, 1, 2, 4, 5, 6, 8, 9)]
    assert result.errors == [
        ItemError(3, "qty", result.errors[0].reason, "'three'"),
        ItemError(7, "id", "missing", ""),
    ]
    assert "whole number" in result.errors[0].reason
    assert str(result.errors[1]) == "record 7: id: missing"
    assert result.failed
    assert len(result) == 10
    stats = m.stats
    assert (stats.name, stats.transformed, stats.failed) == ("orders", 8, 2)
    assert stats.failures_by_field == {"qty": 1, "id": 1}


def test_failures_are_counted_per_field_with_list_indexes_folded() -> None:
    m = mapping(NESTED, name="orders")
    for index in range(3):
        items = [{"sku": "A", "quantity": 1}] * index + [{"sku": "B"}]
        with pytest.raises(TransformError) as caught:
            m.transform(nested_record(items=items))
        assert caught.value.transformer == "orders"
    assert m.stats.failures_by_field == {"lines[].qty": 3}


def test_an_error_carries_a_short_excerpt_of_a_long_value() -> None:
    m = mapping("fields: {n: {convert: int}}")
    error = failure(m, {"n": "x" * 10_000})
    assert len(error.value) == 80
    assert error.value.endswith("...")


def test_a_mapping_is_a_transformer() -> None:
    m = mapping("name: t\nfields: {a: {}}")
    assert isinstance(m, Transformer)
    assert repr(m) == "<Mapping 't' -> dict>"


# -- arbitrary input -------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "a", "b", "items", "name", "meta", "n", "x"])
            | st.text(max_size=5),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)

EVERYTHING = """
fields:
  id: {template: "ext_{value}", source: id}
  n: {convert: int, required: false}
  f: {source: x, convert: float, required: false}
  d: {source: x, convert: decimal, required: false}
  b: {source: a, convert: bool, required: false}
  t: {source: n, convert: datetime, required: false}
  s: {source: name, convert: str, clean: [collapse_spaces, printable, {allow: "a-z "}, {max_length: 3}], default: ""}
  m: {source: a, map: {values: {x: X}}, required: false}
  l: {source: "length(b)", required: false}
  items:
    required: false
    items: {fields: {a: {convert: str, required: false}}}
  meta: {keys: {case: snake}, values: {convert: str, required: false}, required: false}
  nested: {source: b, fields: {a: {required: false}}, required: false}
"""


@given(json_values)
def test_a_mapping_raises_nothing_but_its_own_error_on_arbitrary_json(value: Any) -> None:
    m = mapping(EVERYTHING)
    for record in (
        value,
        {
            "id": 1,
            "n": value,
            "x": value,
            "a": value,
            "b": value,
            "name": value,
            "items": value,
            "meta": value,
        },
    ):
        try:
            out = m.transform(record)
        except TransformError as exc:
            error: TransformError | None = exc
        else:
            error = None
            json.dumps(out, default=str)  # a plain, serialisable result
        if error is not None:
            assert isinstance(error.path, str)
            assert error.reason
