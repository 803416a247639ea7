"""Loading a config file: values, environment variables, secret files, places of keys."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from interlink.core._yaml import Mark
from interlink.service._config import ServiceConfig
from interlink.service._load import (
    ConfigFileError,
    ConfigIssue,
    LoadedConfig,
    check_config,
    dotted,
    load_config,
)
from interlink.service._load_messages import model_message, shown

CONFIGS = Path(__file__).parent / "configs"
VALID = CONFIGS / "valid.yaml"
ENVIRON = {"SHOP_ADMIN_TOKEN": "admin-secret", "STRIPE_WHSEC": "whsec_new"}


def write(folder: Path, text: str, name: str = "interlink.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def issues_of(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    """Every issue of ``path`` without the file name: ``line:column: key: message``."""
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, environ=environ or {})
    return [str(issue).removeprefix(f"{path}:") for issue in caught.value.issues]


# -- a good file ------------------------------------------------------------------------
def test_a_valid_file_loads_with_every_value_read() -> None:
    loaded = check_config(VALID, environ=ENVIRON)
    config = loaded.config
    assert loaded.path == VALID
    assert loaded.base_dir == CONFIGS
    assert config.service.listen == "0.0.0.0:9090"
    assert config.service.admin_token == "admin-secret"
    assert config.service.shutdown_timeout == 90.0
    assert config.service.readiness_timeout == 0.5
    assert config.broker.url == "memory://"  # the default of ${SHOP_BROKER_URL:-memory://}
    payments = config.clients["payments"]
    assert payments.auth is not None
    assert payments.auth.token == "sk_test_from_file"  # secret_file, newline stripped
    assert config.clients["orders"].auth is not None
    assert config.clients["orders"].auth.key == "dev-key"
    assert config.webhooks["stripe"].secrets == ["whsec_new", "whsec_old"]
    assert config.queues["payments.events"].concurrency == 4  # "${WORKERS:-4}" read as a number
    assert config.queues["orders.audit"].handler == "tests.service.config_handlers:on_audit"


def test_the_environment_defaults_to_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SHOP_BROKER_URL", "sqlite:///./shop.db")
    assert load_config(VALID).config.broker.url == "sqlite:///./shop.db"


def test_an_empty_file_is_every_default(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, ""), environ={})
    assert loaded.config == ServiceConfig()
    assert loaded.base_dir == tmp_path


def test_a_relative_path_keeps_its_spelling_and_gets_an_absolute_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "service: {name: shop}\n")
    monkeypatch.chdir(tmp_path)
    loaded = load_config("interlink.yaml", environ={})
    assert loaded.path == Path("interlink.yaml")
    assert loaded.base_dir == tmp_path


def test_keys_are_the_names_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        clients:
          2024: {base_url: https://x.example, headers: {on: "1"}}
        queues:
          on: {forward: {client: "2024", path: /x}}
        """,
    )
    config = load_config(path, environ={}).config
    assert list(config.clients) == ["2024"]
    assert config.clients["2024"].headers == {"on": "1"}
    assert list(config.queues) == ["on"]


# -- ${VAR} -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("written", "environ", "read"),
    [
        ("${NAME}", {"NAME": "shop"}, "shop"),
        ("${NAME:-fallback}", {}, "fallback"),
        ("${NAME:-fallback}", {"NAME": ""}, "fallback"),
        ("${NAME:-fallback}", {"NAME": "shop"}, "shop"),
        ("${NAME:-}", {}, ""),
        ("${NAME}", {"NAME": ""}, ""),
        ("shop-${ENV}-${REGION:-eu}", {"ENV": "prod"}, "shop-prod-eu"),
        ("price: $5, $${NAME} and $$ stay", {}, "price: $5, ${NAME} and $$ stay"),
        ("${NAME:-a:-b c}", {}, "a:-b c"),
        ("${NAME}", {"NAME": "${OTHER}"}, "${OTHER}"),  # a value is not read again
    ],
)
def test_environment_variables_are_read_in_string_values(
    tmp_path: Path, written: str, environ: dict[str, str], read: str
) -> None:
    path = write(tmp_path, f"service: {{name: 'x', admin_token: '{written}'}}\n")
    assert load_config(path, environ=environ).config.service.admin_token == read


def test_variables_are_read_in_lists_and_not_in_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        webhooks:
          ${SOURCE}:
            path: /hooks
            scheme: stripe
            secrets: ["${A}", "${B:-b}"]
            publish_to: q
        """,
    )
    config = load_config(path, environ={"A": "a", "SOURCE": "no"}).config
    assert list(config.webhooks) == ["${SOURCE}"]
    assert config.webhooks["${SOURCE}"].secrets == ["a", "b"]


def test_every_unset_variable_is_an_issue_and_nothing_more(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        clients:
          payments:
            base_url: ${PAYMENTS_URL}
            auth: {type: bearer, token: "${PAYMENTS_TOKEN}"}
            timeout: "${TIMEOUT}"
        """,
    )
    # base_url "${PAYMENTS_URL}" is no URL and the timeout no duration: said once, by the variable.
    assert issues_of(path) == [
        "4:15: clients.payments.base_url: environment variable PAYMENTS_URL is not set",
        "5:33: clients.payments.auth.token: environment variable PAYMENTS_TOKEN is not set",
        "6:14: clients.payments.timeout: environment variable TIMEOUT is not set",
    ]


# -- secret_file ------------------------------------------------------------------------
def test_a_secret_file_is_read_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("s3cret ${NOT_READ}\n\n", encoding="utf-8")
    (tmp_path / "absolute").write_text("abs\r\n", encoding="utf-8")
    path = write(
        tmp_path,
        f"""
        service:
          admin_token: {{secret_file: secrets/token}}
        webhooks:
          stripe:
            path: /hooks
            scheme: stripe
            secrets: [{{secret_file: "{tmp_path / "absolute"}"}}, {{secret_file: "${{DIR}}/token"}}]
            publish_to: q
        """,
    )
    config = load_config(path, environ={"DIR": "secrets"}).config
    assert config.service.admin_token == "s3cret ${NOT_READ}\n"  # one newline stripped
    assert config.webhooks["stripe"].secrets == ["abs", "s3cret ${NOT_READ}\n"]


def test_a_secret_file_that_is_not_text_is_an_issue(tmp_path: Path) -> None:
    (tmp_path / "binary").write_bytes(b"\xff\xfe\x00")
    path = write(tmp_path, "service: {admin_token: {secret_file: binary}}\n")
    assert issues_of(path) == [
        f"1:38: service.admin_token.secret_file: {tmp_path / 'binary'} is not UTF-8 text"
    ]


def test_a_secret_file_path_can_fail_its_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "service: {admin_token: {secret_file: '${DIR}/x'}}\n")
    assert issues_of(path) == [
        "1:38: service.admin_token.secret_file: environment variable DIR is not set",
        f"1:38: service.admin_token.secret_file: cannot read {tmp_path / '${DIR}/x'}: "
        "No such file or directory",
    ]


def test_a_value_from_a_secret_file_is_never_shown(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("amqp-not-http://user:hunter2@host\n", encoding="utf-8")
    (tmp_path / "limit").write_text("lots\n", encoding="utf-8")
    path = write(
        tmp_path,
        """
        clients:
          payments:
            base_url: {secret_file: url}
        webhooks:
          stripe:
            path: /hooks
            scheme: stripe
            secrets: [whsec_a]
            publish_to: q
            max_body: {secret_file: limit}
        """,
    )
    assert issues_of(path) == [
        "4:15: clients.payments.base_url: expected an absolute http(s) URL, "
        "found the secret (not shown)",
        "11:15: webhooks.stripe.max_body: expected an integer, found a string "
        "(a secret: not shown)",
    ]


def test_secret_keys_written_in_the_file_are_never_shown(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        service: {admin_token: [hunter2]}
        clients:
          payments:
            base_url: https://x.example
            auth: {type: basic, username: u, password: 1234}
        """,
    )
    assert issues_of(path) == [
        "2:11: service.admin_token: expected a string, found a list (a secret: not shown)",
        "6:48: clients.payments.auth.password: expected a string, found a number "
        "(a secret: not shown)",
    ]


# -- the file itself --------------------------------------------------------------------
def test_a_missing_file_is_one_issue(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: no such file"
    assert caught.value.issues == [ConfigIssue(str(path), None, None, "", "no such file")]


def test_a_folder_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        check_config(tmp_path, environ={})
    assert str(caught.value) == f"{tmp_path}: cannot read the file: Is a directory"


def test_a_file_that_is_not_utf8_is_one_issue(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("service: {name: café}\n".encode("latin-1"))
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: not UTF-8 text (invalid continuation byte at byte 19)"


def test_issues_come_in_file_order_whichever_pass_found_them(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        queues:
          q: {forward: {client: nobody, path: /x}}
        service:
          name: ""
          listen: ${LISTEN}
          name: again
        """,
    )
    assert issues_of(path) == [
        "3:25: queues.q.forward.client: no client named 'nobody' (clients: is empty)",
        "5:9: service.name: expected a non-empty string, found ''",
        "6:11: service.listen: environment variable LISTEN is not set",
        "7:3: service.name: key 'name' is written twice in the same mapping (first on line 5)",
    ]


def test_less_common_mistakes_are_said_as_plainly(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        ? [a, b]
        : 1
        service: {name: [shop]}
        clients:
          a:
            base_url: https://a.example
            auth: {type: oauth2, token_url: t, client_id: i, client_secret: s, scope: 5}
        webhooks:
          w: {path: 5, scheme: stripe, secrets: [x], publish_to: q}
        """,
    )
    assert issues_of(path) == [
        "2:3: a mapping key must be a plain value, not a list or a mapping",
        "4:11: service.name: expected a string, found ['shop']",
        "8:79: clients.a.auth.scope: expected a string or a list, found 5",
        "10:13: webhooks.w.path: expected a string, found 5 (put it in quotes to make it a string)",
    ]
    with pytest.raises(ConfigFileError) as caught:
        check_config(path, environ={})
    assert len(caught.value.issues) == 4


# -- places -----------------------------------------------------------------------------
def test_a_dotted_key_is_found_even_when_names_hold_dots() -> None:
    loaded = load_config(VALID, environ=ENVIRON)
    assert loaded.locate("queues.payments.events.forward.client") == Mark(36, 23)
    assert loaded.locate("queues.payments.events.forward") == Mark(36, 5)
    assert loaded.locate("queues.payments.events.retry_delays[2]") == Mark(38, 29)
    assert loaded.locate("queues.payments.events.retry_delays[9]") == Mark(38, 5)
    assert loaded.locate("queues.orders.audit.handler") == Mark(40, 14)
    assert loaded.locate("clients.payments.retry.max_attempts") == Mark(21, 27)
    assert loaded.locate("clients.nobody.timeout") == Mark(15, 1)
    assert loaded.locate("clients.payments.timeout.deeper") == Mark(19, 14)
    assert loaded.locate("") == Mark(2, 1)  # where the file's mapping starts
    assert loaded.issue("queues.orders.audit.handler", "wrong") == ConfigIssue(
        str(VALID), 40, 14, "queues.orders.audit.handler", "wrong"
    )


def test_a_loaded_config_made_by_hand_has_no_places() -> None:
    loaded = LoadedConfig(ServiceConfig(), Path("x.yaml"), Path("."))
    assert loaded.locate("service.name") is None
    assert loaded.issue("service.name", "wrong") == ConfigIssue(
        "x.yaml", None, None, "service.name", "wrong"
    )


@pytest.mark.parametrize(
    ("loc", "key"),
    [
        ((), ""),
        (("service",), "service"),
        (("queues", "a.b", "retry_delays", 2), "queues.a.b.retry_delays[2]"),
        (("x", 0, 1, "y"), "x[0][1].y"),
    ],
)
def test_a_location_is_written_as_a_dotted_key(loc: tuple[str | int, ...], key: str) -> None:
    assert dotted(loc) == key


@pytest.mark.parametrize(
    ("issue", "text"),
    [
        (ConfigIssue("f.yaml", 3, 5, "a.b", "bad"), "f.yaml:3:5: a.b: bad"),
        (ConfigIssue("f.yaml", 3, None, "a.b", "bad"), "f.yaml:3: a.b: bad"),
        (ConfigIssue("f.yaml", None, None, "", "bad"), "f.yaml: bad"),
        (ConfigIssue("f.yaml", 1, 1, "", "bad"), "f.yaml:1:1: bad"),
    ],
)
def test_an_issue_reads_file_line_column_key_message(issue: ConfigIssue, text: str) -> None:
    assert str(issue) == text


# -- messages pydantic rarely sends -----------------------------------------------------
def test_an_error_without_a_message_of_ours_keeps_pydantic_words() -> None:
    error = {"type": "url_parsing", "msg": "Input should be a valid URL", "input": "x"}
    assert model_message(error, ("a",), secret=False) == "input should be a valid URL, found 'x'"


def test_a_long_value_is_cut() -> None:
    assert shown("x" * 100) == "'" + "x" * 56 + "..."
    assert shown(3.5) == "3.5"
    assert shown(False) == "false"
