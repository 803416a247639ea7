"""Sources from config mappings: the ``webhooks:`` section of the service file."""

from __future__ import annotations

from typing import Any

import pytest

from interlink.core.errors import ConfigError
from interlink.webhooks import WebhookSource, sources_from_config
from tests.webhooks.signing import SECRET

BASE: dict[str, Any] = {
    "path": "/webhooks/billing",
    "scheme": "standard",
    "secrets": [SECRET],
    "publish_to": "billing.events",
}


def test_a_source_loads_from_its_config_mapping() -> None:
    source = WebhookSource.from_config(
        "billing",
        {**BASE, "tolerance": "10m", "max_body": 4096, "forward_headers": ["User-Agent"]},
    )
    assert (source.name, source.path, source.scheme, source.queue) == (
        "billing",
        "/webhooks/billing",
        "standard",
        "billing.events",
    )
    assert source.verifier.window == 600
    assert source.max_body == 4096
    assert source.forward_headers == ("user-agent",)
    assert "whsec_" not in repr(source)


def test_queue_is_accepted_for_publish_to() -> None:
    config = {k: v for k, v in BASE.items() if k != "publish_to"} | {"queue": "q"}
    assert WebhookSource.from_config("billing", config).queue == "q"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({**BASE, "publsh_to": "x"}, "unknown key 'publsh_to' (did you mean 'publish_to'?)"),
        ({**BASE, "zzz": 1}, "unknown key 'zzz'; keys:"),
        ({k: v for k, v in BASE.items() if k != "path"}, "path is required"),
        ({k: v for k, v in BASE.items() if k != "scheme"}, "scheme is required"),
        ({k: v for k, v in BASE.items() if k != "secrets"}, "secrets is required"),
        ({k: v for k, v in BASE.items() if k != "publish_to"}, "publish_to is required"),
        ({**BASE, "queue": "q"}, "publish_to or queue, not both"),
        ({**BASE, "tolerance": "5 parsecs"}, "webhooks.billing.tolerance"),
        ({**BASE, "tolerance": 0}, "webhooks.billing.tolerance"),
        ({**BASE, "scheme": "stripe-ish"}, "unknown webhook scheme 'stripe-ish'"),
    ],
)
def test_a_config_mistake_names_the_source_and_the_key(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        WebhookSource.from_config("billing", config)
    assert message in str(caught.value)
    assert "billing" in str(caught.value)


def test_a_source_config_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"webhooks\.billing: expected a mapping"):
        WebhookSource.from_config("billing", ["path"])  # type: ignore[arg-type]


def test_sources_from_config_loads_every_source() -> None:
    sources = sources_from_config(
        {"billing": BASE, "shop": {**BASE, "path": "/webhooks/shop", "publish_to": "shop"}}
    )
    assert [(s.name, s.queue) for s in sources] == [("billing", "billing.events"), ("shop", "shop")]
    with pytest.raises(ConfigError, match="webhooks: expected a mapping of source names"):
        sources_from_config([BASE])  # type: ignore[arg-type]
