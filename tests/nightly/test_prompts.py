"""Prompt blocks of spec section 9 render from the shipped templates with the project's real
context; unknown names and missing variables are clear errors."""

import pytest
from typer.testing import CliRunner

from pria_ml import extract
from pria_ml.cli import app
from pria_ml.errors import ConfigError
from pria_ml.operations import prompts
from pria_ml.settings import Settings
from pria_ml.train import PROFILES


@pytest.fixture
def plain(tmp_path) -> Settings:
    return Settings(home=tmp_path)


def test_sql_gen_carries_the_source_schema_and_retention_windows(plain) -> None:
    text = prompts.render(
        plain, "ML1-SQL-GEN", {"slice": "overridden travel expenses", "date": "2026-11-24"}
    )
    assert "Slice: overridden travel expenses" in text
    assert "CREATE TABLE IF NOT EXISTS workflow_event" in text
    for table, days in extract.RETENTION_DAYS.items():
        assert f"`{table}`: {days} days" in text
    assert "2026-05-29T00:00:00+00:00" in text  # expense: 180 days ending with 2026-11-24
    assert "sql/extract/agent_trace.sql" in text


def test_train_cmd_is_the_command_pria_ml_builds_for_the_requested_values(plain) -> None:
    text = prompts.render(
        plain,
        "ML1-TRAIN-CMD",
        {
            "model": "mistralai/Mistral-7B-Instruct-v0.3",
            "lr": "1e-4",
            "ep": "2",
            "date": "2026-11-24",
        },
    )
    assert "on model mistralai/Mistral-7B-Instruct-v0.3, lr 1e-4, epochs 2" in text
    assert "accelerate launch --num_processes 1" in text
    assert "--learning-rate 0.0001 --num-train-epochs 2.0" in text
    assert f"`lora_r` = {PROFILES['spec'].lora_r}" in text
    assert "--date 2026-11-24" in text


def test_eval_prompt_describes_the_benchmark_item_format(plain) -> None:
    text = prompts.render(plain, "ML1-EVAL-PROMPT", {"task": "categorise taxi receipts", "n": "10"})
    assert "Write 10 benchmark items for this capability: categorise taxi receipts" in text
    assert "`completion`: the one correct agent action" in text
    assert '"role": "system"' in text


def test_registry_test_lists_the_registry_functions(plain) -> None:
    text = prompts.render(
        plain, "ML1-REGISTRY-TEST", {"change": "promote refuses an ungated candidate"}
    )
    assert "promote refuses an ungated candidate" in text
    for function in (
        "pria.promote(",
        "pria.rollback(",
        "pria.archive_superseded(",
        "pria.register_candidate(",
    ):
        assert function in text
    assert "pria._make_prod" not in text  # internal helpers are not the interface
    assert "CREATE TABLE pria.model_registry" in text


def test_unknown_block_and_missing_variable_are_clear_errors(plain) -> None:
    with pytest.raises(
        ConfigError, match="unknown prompt block 'ML1-NOPE'; known: ML1-EVAL-PROMPT"
    ):
        prompts.render(plain, "ML1-NOPE")
    with pytest.raises(ConfigError, match=r"needs slice: pass --var slice=\.\.\."):
        prompts.render(plain, "ML1-SQL-GEN")
    with pytest.raises(ConfigError, match="is not k=v"):
        prompts.parse_vars(["lr"])


def test_cli_renders_a_block_and_exits_2_on_a_missing_variable() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["prompt", "ML1-EVAL-PROMPT", "--var", "task=split a hotel bill"])
    assert ok.exit_code == 0, ok.output
    assert "split a hotel bill" in ok.output
    from pria_ml.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["prompt", "ML1-REGISTRY-TEST"])
    assert exited.value.code == 2


def test_templates_ship_as_package_data() -> None:
    import importlib.resources

    shipped = {p.name for p in (importlib.resources.files("pria_ml") / "templates").iterdir()}
    assert {f"{name}.md" for name in prompts.names()} <= shipped
