"""The README's example service file stays valid as the models change."""

from __future__ import annotations

import re
from pathlib import Path

from interlink.service._load import load_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_service_file_loads(tmp_path: Path) -> None:
    [text] = re.findall(r"```yaml\n(# interlink\.yaml\n.*?)```", README.read_text(), re.DOTALL)
    path = tmp_path / "interlink.yaml"
    path.write_text(text)
    environ = {"ADMIN_TOKEN": "t", "ORDERS_TOKEN": "o", "STRIPE_WHSEC": "whsec_c2VjcmV0"}
    loaded = load_config(path, environ=environ)
    assert list(loaded.config.queues) == ["stripe.events"]
    assert loaded.config.queues["stripe.events"].forward is not None
