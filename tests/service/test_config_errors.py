"""Every broken file in configs/broken/ and the exact issues it gets: all of them, in file order.

Each issue names the line and column, the dotted key, what was expected and
what was found. The files hold one kind of mistake each (and several of it),
so a change to a message shows up here as a diff of one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interlink.core.errors import ConfigError
from interlink.service._load import ConfigFileError, check_config, load_config

BROKEN = Path(__file__).parent / "configs" / "broken"

EXPECTED = {
    "auth.yaml": [
        "4:5: clients.payments.auth: auth type bearer needs token",
        "7:5: clients.search.auth: api_key goes in a header or a query parameter, not both",
        "10:18: clients.partner.auth.type: expected 'bearer', 'api_key', 'basic' or 'oauth2', "
        "found 'oauth' (did you mean 'oauth2'?)",
    ],
    "duplicate_keys.yaml": [
        "3:3: service.name: key 'name' is written twice in the same mapping (first on line 2)",
        "8:5: clients.payments.timeout: key 'timeout' is written twice in the same mapping "
        "(first on line 7)",
        "9:3: clients.payments: key 'payments' is written twice in the same mapping "
        "(first on line 5)",
    ],
    "empty_sections.yaml": [
        "1:9: service: expected a mapping, found nothing (an empty value)",
        "2:9: clients: expected a mapping, found nothing (an empty value)",
        "4:10: queues.orders: expected a mapping, found nothing (an empty value)",
    ],
    "environment.yaml": [
        "2:16: service.admin_token: environment variable ADMIN_TOKEN is not set",
        "3:11: service.listen: expected host:port such as 127.0.0.1:8080, found '127.0.0.1:x'",
        "6:15: clients.payments.base_url: '${PAYMENTS URL}' is not ${VAR} or ${VAR:-default} "
        "(write $${ for a literal ${)",
        "7:33: clients.payments.auth.token: '${' without a closing '}' "
        "(write $${ for a literal ${)",
    ],
    "missing.yaml": [
        "2:3: clients.payments.base_url: required, but missing",
        "5:3: webhooks.stripe.scheme: required, but missing",
        "5:3: webhooks.stripe.publish_to: required, but missing",
        "7:5: webhooks.stripe.secrets: expected at least 1 item, found an empty list",
        "9:3: queues.payments: give a queue either handler or forward (one of them)",
        "11:5: queues.orders.forward.path: required, but missing",
    ],
    "not_a_mapping.yaml": [
        "1:1: expected a mapping of sections (service, broker, state, storage, clients, "
        "webhooks, queues, observability), found ['service', 'clients']",
    ],
    "references.yaml": [
        "6:18: webhooks.github.path: '/webhooks/in' is already the path of webhooks.stripe",
        "9:23: queues.payments.forward.client: no client named 'payment' "
        "(did you mean 'payments'?)",
        "11:23: queues.code.forward.client: no client named 'ledger' (clients: payments, orders)",
    ],
    "observability.yaml": [
        "3:3: observability.tracing: endpoint is where exporter otlp sends spans; exporter is "
        "'none', so nothing would go there (set exporter: otlp)",
        "7:25: observability.logging.redact[1]: expected a non-empty string, found ''",
    ],
    "otlp.yaml": [
        "3:39: observability.tracing.endpoint: expected an absolute http(s) URL, "
        "found 'otel-collector:4318'",
        "3:76: observability.tracing.service_name: expected a non-empty string, found ''",
    ],
    "secret_files.yaml": [
        f"2:30: service.admin_token.secret_file: cannot read {BROKEN / 'no-such-secret.txt'}: "
        "No such file or directory",
        "8:28: clients.payments.auth.token.secret_file: expected a file path, found 42",
        "11:51: clients.orders.auth.password: {secret_file: PATH} stands alone, "
        "found other keys: optional",
    ],
    "types.yaml": [
        "2:11: service.listen: expected host:port such as 127.0.0.1:8080, found 'nowhere'",
        "3:18: service.worker_listen: expected host:port such as 127.0.0.1:8080, "
        "found '0.0.0.0:70000'",
        "4:21: service.shutdown_timeout: invalid duration 'soon': expected a number with a "
        "unit (us, ms, s, m, h, d), e.g. '250ms', '5s', '2m', '1h'",
        "5:22: service.readiness_timeout: invalid duration '0s': must be greater than zero",
        "8:15: clients.payments.base_url: expected an absolute http(s) URL, "
        "found 'api.payments.example'",
        '9:5: clients.payments.timeout: expected a duration such as "30s" '
        "(or a number of seconds), found [1, 2]",
        "10:16: clients.payments.transport: expected 'aiohttp' or 'httpx', found 'aiohtp' "
        "(did you mean 'aiohttp'?)",
        "11:24: clients.payments.headers.X-Debug: expected a string, found true "
        "(YAML reads yes, no, on, off, true and false as booleans: put it in quotes)",
        "11:40: clients.payments.headers.X-Version: expected a string, found 2 "
        "(put it in quotes to make it a string)",
        "16:14: webhooks.stripe.secrets: expected a list, found a string (a secret: not shown)",
        "18:15: webhooks.stripe.max_body: expected an integer > 0, found 0",
        "21:41: queues.payments.forward.method: expected 'POST', 'PUT', 'PATCH', 'DELETE' "
        "or 'GET', found 'post' (did you mean 'POST'?)",
        "22:18: queues.payments.concurrency: expected an integer, found 'many'",
        "23:19: queues.payments.max_attempts: expected an integer >= 1, found 0",
        '24:24: queues.payments.retry_delays[1]: expected a duration such as "30s" '
        "(or a number of seconds), found a mapping",
        "25:15: queues.payments.ordering: expected 'block' or 'continue', found 'strict'",
        "26:10: storage: expected a mapping, found 'nothing'",
        "28:23: observability.tracing.messages: expected 'continue' or 'new_trace', found 'linked'",
    ],
    "unknown_keys.yaml": [
        "1:1: servise: unknown key 'servise' (did you mean 'service'?)",
        "6:5: clients.payments.retyr: unknown key 'retyr' (did you mean 'retry'?)",
        "7:5: clients.payments.colour: unknown key 'colour' (expected one of: base_url, auth, "
        "timeout, headers, transport, deadline, retry, retry_budget, circuit_breaker, "
        "bulkhead, rate_limit, hedge, adaptive_throttle, fallback)",
        "11:5: queues.orders.concurency: unknown key 'concurency' (did you mean 'concurrency'?)",
        "12:48: queues.orders.forward.verb: unknown key 'verb' "
        "(expected one of: client, method, path)",
    ],
    "yaml_syntax.yaml": [
        "4:42: not valid YAML: while parsing a flow sequence expected ',' or ']', but got '}'",
    ],
}
ENVIRON = {"environment.yaml": {"PORT": "x"}}


def test_every_broken_file_has_its_expectation() -> None:
    files = {path.name for path in BROKEN.glob("*.yaml")}
    assert files - {"builders.yaml"} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_broken_file_gets_every_issue_exactly(name: str) -> None:
    path = BROKEN / name
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, environ=ENVIRON.get(name, {}))
    expected = [f"{path}:{line}" for line in EXPECTED[name]]
    assert [str(issue) for issue in caught.value.issues] == expected
    assert str(caught.value) == "\n".join(expected)
    assert isinstance(caught.value, ConfigError)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_config_adds_nothing_to_a_file_the_builders_never_see(name: str) -> None:
    path = BROKEN / name
    with pytest.raises(ConfigFileError) as loading:
        load_config(path, environ=ENVIRON.get(name, {}))
    with pytest.raises(ConfigFileError) as checking:
        check_config(path, environ=ENVIRON.get(name, {}))
    assert checking.value.issues == loading.value.issues


def test_the_builders_issues_come_with_the_models_and_each_in_its_place() -> None:
    path = BROKEN / "builders.yaml"
    with pytest.raises(ConfigFileError) as caught:
        check_config(path, environ={})
    issues = caught.value.issues
    # The builders' words are theirs: the place and the key are the loader's.
    assert [(issue.line, issue.column, issue.key) for issue in issues] == [
        (4, 14, "clients.payments.timeout"),
        (8, 44, "webhooks.stripe.scheme"),
        (14, 16, "queues.orders.transform"),
        (16, 14, "queues.audit.handler"),
        (18, 14, "queues.refunds.handler"),
    ]
    assert "'soon'" in issues[0].message
    assert issues[1].message.startswith("unknown scheme 'strype' (did you mean 'stripe'?)")
    assert issues[2].message == (
        "cannot read the mapping '../mappings/no-such-mapping.yaml': No such file or directory"
    )
    assert "not an async function" in issues[3].message
    assert "cannot import 'tests.service.no_such_module'" in issues[4].message
    # queues.payments forwards to the broken client: the model's issue is the only one.
    assert not any(issue.key.startswith("queues.payments") for issue in issues)


def test_load_config_leaves_the_builders_alone() -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_config(BROKEN / "builders.yaml", environ={})
    assert [issue.key for issue in caught.value.issues] == ["clients.payments.timeout"]
