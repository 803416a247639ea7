"""docs/transform.md cannot drift: every YAML example loads as a mapping and the class example
runs (its runnable worker example is run by tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from interlink.transform import Mapping

DOC = Path(__file__).resolve().parents[2] / "docs" / "transform.md"
_BLOCK = re.compile(r"^```(yaml|python)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def blocks(kind: str) -> list[Any]:
    text = DOC.read_text(encoding="utf-8")
    return [
        pytest.param(m.group(2), id=f"transform.md:{text.count(chr(10), 0, m.start()) + 1}")
        for m in _BLOCK.finditer(text)
        if m.group(1) == kind
    ]


@pytest.mark.parametrize("text", blocks("yaml"))
def test_every_yaml_example_loads(text: str) -> None:
    """A whole mapping loads as it is; a fragment of fields loads under ``fields:``."""
    document = yaml.safe_load(text)
    assert isinstance(document, dict)
    if "fields" not in document:
        text = "fields:\n" + "".join(f"  {line}\n" for line in text.splitlines())
    Mapping.from_yaml(text, source="transform.md")


def test_the_class_example_runs() -> None:
    [code] = [p.values[0] for p in blocks("python") if "class ChargeToPayment" in p.values[0]]
    namespace: dict[str, Any] = {"__name__": "transform_doc_example"}
    exec(compile(code, "transform.md", "exec", dont_inherit=True), namespace)
    payment = namespace["ChargeToPayment"]().transform({"id": "ch_1", "amount": 5, "created": 0})
    assert payment.id == "pay_ch_1"
    assert payment.paid_at.isoformat() == "1970-01-01T00:00:00+00:00"
