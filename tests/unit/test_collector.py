"""The garbage collector's batch tuning (the helper's: tests/unit/test_scoring_helper.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from assetwatch.agents.worker.collector import YOUNG_THRESHOLD, tune_for_batches


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_tuning_raises_the_young_threshold_and_freezes_start_up_objects() -> None:
    middle, old = gc.get_threshold()[1:]
    assert gc.get_threshold()[0] < YOUNG_THRESHOLD

    tune_for_batches()

    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, old)
    assert gc.get_freeze_count() > 0
