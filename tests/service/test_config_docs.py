"""docs/configuration.md matches the models: its reference is generated, its examples load."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from interlink.service._config import ServiceConfig
from interlink.service._load import load_config
from interlink.service._reference import (
    BEGIN,
    END,
    _default,
    _duration_text,
    main,
    reference,
    update_document,
)

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "docs" / "configuration.md"
CONFIGS = Path(__file__).parent / "configs"


def test_the_reference_in_the_document_is_the_generated_one() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    assert update_document(text) == text, "run: python -m interlink.service._reference"
    assert reference() in text


def models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []

    def visit(annotation: object) -> None:
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if is_model and annotation not in found:
            found.append(annotation)
            for info in annotation.model_fields.values():
                visit(info.annotation)
        for argument in typing.get_args(annotation):
            visit(argument)

    visit(ServiceConfig)
    return found


@pytest.mark.parametrize("model", models()[1:], ids=lambda model: model.__name__)
def test_every_key_of_every_section_is_in_the_reference(model: type[BaseModel]) -> None:
    text = reference()
    for name in model.model_fields:
        assert f"| `{name}` |" in text, f"{model.__name__}.{name}"


def yaml_blocks(text: str) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_the_complete_example_loads(tmp_path: Path) -> None:
    example = yaml_blocks(DOCUMENT.read_text(encoding="utf-8"))[0]
    path = tmp_path / "interlink.yaml"
    path.write_text(example, encoding="utf-8")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "orders_client_secret").write_text("s\n", encoding="utf-8")
    environ = {"INTERLINK_ADMIN_TOKEN": "t", "PAYMENTS_TOKEN": "p", "STRIPE_WHSEC": "w"}
    config = load_config(path, environ=environ).config
    assert set(config.model_fields_set) == set(ServiceConfig.model_fields)  # every section
    assert config.clients["orders"].auth is not None
    assert config.clients["orders"].auth.client_secret == "s"


def test_the_mistakes_shown_are_what_check_config_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from interlink.cli import app

    text = DOCUMENT.read_text(encoding="utf-8")
    shown = re.search(r"```text\n\$ interlink check-config -c interlink.yaml\n(.*?)```", text, re.S)
    assert shown is not None
    monkeypatch.chdir(CONFIGS / "documented")
    result = CliRunner().invoke(app, ["check-config", "-c", "interlink.yaml"])
    assert result.stderr == shown.group(1)


def test_the_generator_rewrites_only_its_part(tmp_path: Path) -> None:
    document = tmp_path / "configuration.md"
    stale = f"# Title\n\nProse.\n\n{BEGIN}\nold table\n{END}\n\nMore prose.\n"
    document.write_text(stale, encoding="utf-8")
    assert main([str(document), "--check"]) == 1
    assert document.read_text(encoding="utf-8") == stale
    assert main([str(document)]) == 0
    fresh = document.read_text(encoding="utf-8")
    assert fresh == f"# Title\n\nProse.\n\n{BEGIN}\n\n{reference()}\n{END}\n\nMore prose.\n"
    assert main([str(document), "--check"]) == 0
    assert main([str(document)]) == 0


def test_the_generator_checks_the_document_of_the_repository(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["--check"]) == 0
    assert capsys.readouterr().out == ""


def test_defaults_are_written_as_in_the_file() -> None:
    assert _default(ServiceConfig.model_fields["service"]) == "its defaults"
    assert _default(ServiceConfig.model_fields["clients"]) == "`{}`"
    assert [_duration_text(s) for s in (0.25, 2.0, 90.0, 120.0, 7200.0)] == [
        "250ms",
        "2s",
        "90s",
        "2m",
        "2h",
    ]
