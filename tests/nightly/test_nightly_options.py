"""`pria-ml nightly` refuses stage selections that make no sense before touching anything."""

import pytest

from pria_ml.cli import main
from pria_ml.errors import ConfigError
from pria_ml.operations.nightly import STAGES, Selection


def test_stages_run_in_the_spec_order() -> None:
    assert STAGES == (
        "extract", "build-features", "train", "eval", "gate", "promote", "archive", "retention"
    )  # fmt: skip
    chosen = Selection(first="train", last="gate")
    assert [s for s in STAGES if chosen.selected(s)] == ["train", "eval", "gate"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "evaluate"], "--from 'evaluate' is not a stage; stages: extract, build-"),
        (["--from", "promote", "--until", "train"], "--from promote comes after --until train"),
    ],
)
def test_a_bad_selection_is_a_usage_error(args, message, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["nightly", "--date", "2026-11-24", *args])
    assert exited.value.code == ConfigError.exit_code
    assert message in capsys.readouterr().err
