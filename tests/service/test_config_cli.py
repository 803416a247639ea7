"""``interlink check-config`` and ``interlink config-schema``: exit codes, output, the schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from interlink.cli import app
from interlink.service._reference import json_schema, reference

CONFIGS = Path(__file__).parent / "configs"
ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()
ENVIRON = {"SHOP_ADMIN_TOKEN": "admin-secret", "STRIPE_WHSEC": "whsec_new"}


# -- check-config -----------------------------------------------------------------------
def test_a_good_file_exits_0_with_what_it_holds() -> None:
    path = CONFIGS / "valid.yaml"
    result = runner.invoke(app, ["check-config", "-c", str(path)], env=ENVIRON)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"ok: {path} (2 clients, 1 webhook source, 2 queues)\n"
    assert result.stderr == ""


def test_the_default_file_is_interlink_yaml_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "interlink.yaml").write_text(
        "clients: {a: {base_url: 'https://a.example'}}\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["check-config"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ok: interlink.yaml (1 client, 0 webhook sources, 0 queues)\n"


def test_a_broken_file_exits_2_with_every_issue_on_stderr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(CONFIGS / "documented")
    result = runner.invoke(app, ["check-config", "--config", "interlink.yaml"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "interlink.yaml:8:5: clients.payments.retyr: unknown key 'retyr' (did you mean 'retry'?)",
        "interlink.yaml:9:14: clients.payments.timeout: invalid duration 'soon': expected a "
        "number with a unit (us, ms, s, m, h, d), e.g. '250ms', '5s', '2m', '1h'",
        "interlink.yaml:17:14: webhooks.stripe.secrets: expected a list, found a string "
        "(a secret: not shown)",
        "interlink.yaml:22:23: queues.payments.events.forward.client: no client named 'order' "
        "(did you mean 'orders'?)",
        "interlink.yaml:23:19: queues.payments.events.max_attempts: expected an integer >= 1, "
        "found 0",
        "interlink.yaml: 5 problems, nothing started",
    ]


def test_one_problem_is_said_in_the_singular(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    result = runner.invoke(app, ["check-config", "-c", str(path)])
    assert result.exit_code == 2
    assert result.stderr == f"{path}: no such file\n{path}: 1 problem, nothing started\n"


def test_check_config_as_a_real_process() -> None:
    env = {**os.environ, **ENVIRON}
    command = [sys.executable, "-c", "from interlink.cli import main; main()", "check-config"]
    good = subprocess.run(
        [*command, "-c", "tests/service/configs/valid.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (good.returncode, good.stderr) == (0, "")
    assert good.stdout.startswith("ok: tests/service/configs/valid.yaml (2 clients")
    bad = subprocess.run(
        [*command, "-c", "tests/service/configs/broken/builders.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "Traceback" not in bad.stderr
    lines = bad.stderr.splitlines()
    assert lines[0].startswith("tests/service/configs/broken/builders.yaml:4:14: ")
    assert lines[-1] == "tests/service/configs/broken/builders.yaml: 5 problems, nothing started"


# -- config-schema ----------------------------------------------------------------------
def schema_from_command() -> dict[str, Any]:
    result = runner.invoke(app, ["config-schema"])
    assert result.exit_code == 0, result.stderr
    schema = json.loads(result.stdout)
    assert isinstance(schema, dict)
    return schema


def test_the_schema_is_json_for_editors() -> None:
    schema = schema_from_command()
    assert schema == json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "interlink.yaml"
    assert set(schema["properties"]) == {
        "service",
        "broker",
        "state",
        "storage",
        "clients",
        "webhooks",
        "queues",
        "observability",
    }
    assert schema["additionalProperties"] is False


def validator() -> Any:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    return jsonschema_rs.Draft202012Validator(schema_from_command())


def as_data(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_the_schema_accepts_what_the_loader_accepts() -> None:
    check = validator()
    assert check.is_valid(as_data(CONFIGS / "valid.yaml"))  # secret_file, ${WORKERS:-4}
    assert check.is_valid(as_data(ROOT / "examples" / "demo.yaml"))
    assert check.is_valid({"service": {"readiness_timeout": 2}, "queues": {}})


@pytest.mark.parametrize(
    "data",
    [
        {"servise": {}},
        {"clients": {"a": {"base_url": "https://a.example", "retyr": {}}}},
        {"clients": {"a": {}}},
        {"queues": {"q": {"handler": "a:b", "ordering": "strict"}}},
        {"queues": {"q": {"handler": "a:b", "concurrency": "many"}}},
        {"service": {"admin_token": {"secret_file": "x", "other": 1}}},
    ],
)
def test_the_schema_refuses_what_the_models_refuse(data: dict[str, Any]) -> None:
    assert not validator().is_valid(data)


def test_the_markdown_format_is_the_reference() -> None:
    result = runner.invoke(app, ["config-schema", "--format", "markdown"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == reference()


def test_an_unknown_format_is_refused() -> None:
    result = runner.invoke(app, ["config-schema", "--format", "yaml"])
    assert result.exit_code == 2
    assert "yaml" in result.stderr
