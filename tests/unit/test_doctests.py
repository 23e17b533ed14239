"""Every example in a docstring runs: the examples are documentation that cannot go stale."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import assetwatch

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(assetwatch.__path__, "assetwatch.")
    if not info.name.endswith("__main__")  # importing it runs the command line
)


def test_the_walk_finds_the_modules_with_examples() -> None:
    assert {"assetwatch.features.state", "assetwatch.agents.worker.fence"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
