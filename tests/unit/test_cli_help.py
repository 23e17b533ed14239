"""The CLI explains itself: a description per verb, defaults, the settings it reads, --version."""

from __future__ import annotations

import argparse

import pytest

from assetwatch.cli import build_parser
from assetwatch.cli.help import DESCRIPTIONS, SETTINGS, version
from assetwatch.settings import Settings


def _verbs() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_verb_is_described_and_every_description_names_a_verb() -> None:
    assert set(_verbs()) == set(DESCRIPTIONS) == set(SETTINGS)


@pytest.mark.parametrize("verb", sorted(DESCRIPTIONS))
def test_a_verbs_help_has_its_description_defaults_and_settings(verb: str) -> None:
    text = _verbs()[verb].format_help()
    assert DESCRIPTIONS[verb].split()[0] in text
    assert "ASSETWATCH_" in text
    parser = _verbs()[verb]
    for action in parser._actions:
        if action.option_strings and action.default not in (None, argparse.SUPPRESS, False):
            assert f"(default: {action.default})" in " ".join(text.split()), action.dest


@pytest.mark.parametrize("name", sorted({n for names in SETTINGS.values() for n in names}))
def test_the_epilogs_name_real_settings(name: str) -> None:
    stem = name.removesuffix("*").lower()
    assert any(field == stem or (name.endswith("*") and field.startswith(stem))
               for field in Settings.model_fields), name


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"assetwatch {version()}"
    assert version() != "unknown"
