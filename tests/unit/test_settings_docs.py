"""Every setting has a row in the README's table, with its default (.env.example: test_compose)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from assetwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `ASSETWATCH_([A-Z0-9_]+)`[^|]*\| ([^|]+) \|", re.MULTILINE)


def _shown(default: Any) -> str:
    """A default as the README's table shows it."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return f"`{json.dumps(list(default))}`"
    return f"`{getattr(default, 'value', default)}`"


README_ROWS = dict(ROW.findall((ROOT / "README.md").read_text()))


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_each_setting_has_a_readme_row_with_its_default(name: str) -> None:
    field = Settings.model_fields[name]
    assert name.upper() in README_ROWS, f"README's settings table lacks ASSETWATCH_{name.upper()}"
    if not callable(field.default_factory):
        assert README_ROWS[name.upper()].strip() == _shown(field.default)
