"""docs/webhooks.md's config examples load, and every built-in scheme has one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from interlink.webhooks import SCHEMES, sources_from_config
from tests.webhooks.test_verify_garbage import EXAMPLES

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
_YAML = re.compile(r"^```yaml[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_VAR = re.compile(r"\$\{(\w+)\}")


def examples() -> list[dict[str, Any]]:
    blocks = [yaml.safe_load(block) for block in _YAML.findall(DOC.read_text(encoding="utf-8"))]
    return [
        block["webhooks"] for block in blocks if isinstance(block, dict) and "webhooks" in block
    ]


def test_every_config_example_loads_and_every_scheme_has_one() -> None:
    covered: set[str] = set()
    for section in examples():
        for settings in section.values():
            scheme = settings["scheme"]
            secret = EXAMPLES[scheme][0][0][0]  # a secret in the scheme's own format
            settings["secrets"] = [_VAR.sub(secret, s) for s in settings["secrets"]]
        for source in sources_from_config(section):
            covered.add(source.scheme)
    assert covered == set(SCHEMES)
