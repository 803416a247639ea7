"""The YAML loader under the config file: the line and column of every key, value and item."""

from __future__ import annotations

import pytest

from interlink.core._yaml import Located, LocatedList, Mark, YamlError, line_of, load_yaml

TEXT = """\
service:
  name: shop
clients:
  payments: {base_url: https://x.example, timeout: 5s}
queues:
  q:
    retry_delays:
      - 1s
      - 10s
"""


def test_every_key_and_value_has_its_line_and_column() -> None:
    root = load_yaml(TEXT)
    assert isinstance(root, Located)
    assert root.mark == Mark(1, 1)
    assert root.keys_at["clients"] == Mark(3, 1)
    service = root["service"]
    assert service.keys_at["name"] == Mark(2, 3)
    assert service.values_at["name"] == Mark(2, 9)
    payments = root["clients"]["payments"]
    assert payments.mark == Mark(4, 13)  # a flow mapping starts at its brace
    assert payments.keys_at["timeout"] == Mark(4, 43)
    assert payments.values_at["timeout"] == Mark(4, 52)


def test_every_list_item_has_its_place() -> None:
    delays = load_yaml(TEXT)["queues"]["q"]["retry_delays"]
    assert isinstance(delays, LocatedList)
    assert delays == ["1s", "10s"]
    assert delays.mark == Mark(8, 7)
    assert delays.items_at == [Mark(8, 9), Mark(9, 9)]


def test_lists_can_stay_plain() -> None:
    delays = load_yaml(TEXT, locate_lists=False)["queues"]["q"]["retry_delays"]
    assert type(delays) is list


def test_line_of_a_key_falls_back_to_its_mapping() -> None:
    root = load_yaml(TEXT)
    assert line_of(root["service"], "name") == 2
    assert line_of(root["service"], "absent") == 2
    assert line_of(root["service"], ["not", "hashable"]) == 2
    assert line_of("not located") is None
    assert root["service"].lines == {"name": 2}


def test_a_key_written_twice_stops_a_strict_load() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("a: 1\nb: 2\na: 3\n")
    assert caught.value.message == "key 'a' is written twice in the same mapping (first on line 1)"
    assert caught.value.mark == Mark(3, 1)
    assert caught.value.line == 3


def test_a_lenient_load_keeps_the_first_value_and_records_the_problem() -> None:
    root = load_yaml("a: 1\nb: 2\na: 3\n? [x]\n: 4\n", strict=False)
    assert root == {"a": 1, "b": 2}
    assert root.problems == [
        (Mark(3, 1), "a", "key 'a' is written twice in the same mapping (first on line 1)"),
        (Mark(4, 3), None, "a mapping key must be a plain value, not a list or a mapping"),
    ]


def test_a_list_as_key_stops_a_strict_load() -> None:
    with pytest.raises(YamlError, match="a mapping key must be a plain value"):
        load_yaml("? [x]\n: 4\n")


def test_the_text_of_keys_yaml_reads_as_something_else_is_kept() -> None:
    root = load_yaml("yes: 1\n2024: 2\n'on': 3\n")
    assert root.texts == {True: "yes", 2024: "2024"}


def test_invalid_yaml_names_its_place() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("a: [1, 2\nb: 3\n")
    assert caught.value.message.startswith("not valid YAML: while parsing a flow sequence")
    assert caught.value.mark is not None


def test_a_forbidden_character_names_its_place() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("a: b\nc: \x07\n")  # a control character: the reader refuses it
    assert caught.value.message == "not valid YAML: special characters are not allowed"
    assert caught.value.mark == Mark(2, 4)
    assert YamlError("x").line is None
