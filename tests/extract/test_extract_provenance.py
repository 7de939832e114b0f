"""An extract's ``code_version`` changes whenever what decides its content changes: extract.py,
the scrubber and every package module it imports, the word list it reads, the SQL, and the
libraries its detectors come from; and only then."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pria_ml import extract
from pria_ml.data import provenance

SCRUBBER = {"data/privacy.py", "data/secrets.py", "data/textview.py", "data/lexicon.py"}


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the package that code_version reads instead of the real one."""
    copy = tmp_path / "pria_ml"
    shutil.copytree(
        provenance._PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    monkeypatch.setattr(provenance, "_PACKAGE", copy)
    return copy


def test_the_scrubber_is_privacy_and_every_module_it_imports() -> None:
    modules = set(provenance.package_imports("data/privacy.py"))
    assert modules >= SCRUBBER
    # Imports under ``if TYPE_CHECKING:`` change no behaviour (privacy.py names Settings there).
    assert "settings.py" not in modules


@pytest.mark.parametrize(
    "module", ["extract.py", *sorted(SCRUBBER), "errors.py", "assets/cl100k_base.tiktoken"]
)
def test_a_change_to_what_decides_an_extract_changes_its_code_version(
    package: Path, module: str
) -> None:
    before = extract.code_version()
    with (package / module).open("ab") as handle:
        handle.write(b"\n")
    assert extract.code_version() != before


def test_a_module_the_scrubber_starts_to_import_is_covered(package: Path) -> None:
    (package / "data" / "plates.py").write_text("PATTERN = 'AB-123-CD'\n")
    privacy = package / "data" / "privacy.py"
    privacy.write_text(
        privacy.read_text().replace(
            "from pria_ml.data import secrets, textview",
            "from pria_ml.data import plates, secrets, textview",
        )
    )
    assert "data/plates.py" in provenance.package_imports("data/privacy.py")
    before = extract.code_version()
    (package / "data" / "plates.py").write_text("PATTERN = 'AB-123-CE'\n")
    assert extract.code_version() != before


def test_an_unrelated_module_leaves_the_code_version_alone(package: Path) -> None:
    before = extract.code_version()
    with (package / "train.py").open("a") as handle:
        handle.write("\n")
    assert extract.code_version() == before
