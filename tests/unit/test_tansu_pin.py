"""The embedded broker runs on x86-64 and aarch64 Linux and Apple Silicon, each binary pinned."""

from __future__ import annotations

import pytest

from assetwatch.agents.local.broker import TANSU_SHA256, expected_sha256, tansu_binary
from assetwatch.errors import BrokerError


def test_the_installed_binary_matches_its_platform_pin() -> None:
    assert tansu_binary().is_file()  # raises on a hash mismatch


@pytest.mark.parametrize(("system", "machine", "pinned"), [
    ("linux", "x86_64", "38a00e20"), ("linux", "AMD64", "38a00e20"),
    ("linux", "aarch64", "fc1d8401"), ("linux", "arm64", "fc1d8401"),
    ("darwin", "arm64", "87b9a1bb"),
])
def test_each_supported_platform_has_its_own_pin(system: str, machine: str, pinned: str) -> None:
    assert expected_sha256(system, machine).startswith(pinned)


def test_the_pins_are_distinct_sha256_digests() -> None:
    digests = list(TANSU_SHA256.values())
    assert len(set(digests)) == len(digests) == 3
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in digests)


@pytest.mark.parametrize(("system", "machine"), [("darwin", "x86_64"), ("win32", "AMD64")])
def test_an_unpinned_platform_is_refused_by_name(system: str, machine: str) -> None:
    with pytest.raises(BrokerError, match=f"(?i)no pinned tansu binary for {system}/{machine}"):
        expected_sha256(system, machine)
