"""The configuration reference is generated from the settings model; README carries it verbatim."""

from __future__ import annotations

import pytest

from chatui import cli, config_docs
from chatui.config import Settings
from tests.conftest import ROOT


def _keys(model, prefix=""):
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}"
        sub, is_list = config_docs._submodel(field.annotation)
        if sub is not None:
            yield from _keys(sub, f"{prefix}{name}{'[]' if is_list else ''}.")


def test_readme_block_equals_the_generated_reference():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    current = config_docs.readme_block(readme)
    assert current is not None, (
        f"README.md has no {config_docs.START} … {config_docs.END} block; "
        f"run: {config_docs.REGENERATE}")
    assert current == config_docs.block(), (
        f"README.md's configuration reference is out of date; run: {config_docs.REGENERATE}")
    assert "## Configuration reference\n\n" + config_docs.START in readme


def test_every_settings_key_is_documented_with_type_and_default():
    text = config_docs.render()
    for key in _keys(Settings):
        rows = [line for line in text.splitlines() if line.startswith(f"| `{key}` |")]
        assert len(rows) == 1, key
        cells = [c.strip() for c in rows[0].strip("|").split(" | ")]
        assert len(cells) == 4 and cells[1] and cells[2], rows[0]


def test_descriptions_come_from_the_model_first():
    text = config_docs.render()
    assert "| `websearch.max_results` | int (≥ 1, ≤ 20) | `8` | Pages to fetch per search. |" in text
    assert "| `models[].type` | `llamacpp` or `tgi` or `openai` or `vllm` | **required** |" in text
    stale = [k for k in config_docs.FALLBACK_DESCRIPTIONS if k not in set(_keys(Settings))]
    assert not stale, f"FALLBACK_DESCRIPTIONS names keys the model no longer has: {stale}"


def test_environment_table_covers_every_variable_the_code_reads():
    used = config_docs.env_vars_in_source()
    assert {"CHATUI_CONFIG", "CHATUI_ENDPOINT_URL", "CHATUI_DB_PATH", "CHATUI_PORT", "PORT",
            "HF_TOKEN"} <= set(used)
    undocumented = [n for n in used if n not in config_docs.ENV_DOCS]
    assert not undocumented, f"describe these in chatui/config_docs.py ENV_DOCS: {undocumented}"
    stale = [n for n in config_docs.ENV_DOCS if n not in used]
    assert not stale, f"ENV_DOCS describes variables nothing reads any more: {stale}"
    text = config_docs.render()
    for name in used:
        assert f"| `{name}` |" in text


def test_cli_prints_writes_and_checks(tmp_path, capsys):
    assert cli.main(["config-docs"]) == 0
    assert capsys.readouterr().out == config_docs.block() + "\n"
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\nIntro.\n", encoding="utf-8")
    assert cli.main(["config-docs", "--check", str(readme)]) == 1
    assert cli.main(["config-docs", "--write", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("# Project\n\nIntro.\n\n## Configuration reference\n\n")
    assert cli.main(["config-docs", "--check", str(readme)]) == 0
    # A stale block is replaced in place; the text around it is untouched.
    readme.write_text(text.replace("Pages to fetch per search.", "old") + "\n## After\n")
    assert cli.main(["config-docs", "--write", str(readme)]) == 0
    assert readme.read_text(encoding="utf-8") == text + "\n## After\n"


@pytest.mark.parametrize("name", ["space", "config-docs"])
def test_commands_are_registered(name):
    assert name in cli.COMMANDS
