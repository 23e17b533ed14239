"""How the embedded broker's durable storage is started, and its typed start-up errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from assetwatch.agents.local import seaweed
from assetwatch.agents.local.broker import free_ports, start_broker
from assetwatch.agents.local.seaweed import PORT_NAMES, start_seaweedfs
from assetwatch.errors import BrokerError


def test_free_ports_are_distinct() -> None:
    ports = free_ports(10)
    assert len(set(ports)) == 10


def test_weed_listens_on_loopback_ports_of_its_own_and_phones_nowhere(tmp_path: Path) -> None:
    ports = {f"{name}{kind}": 20000 + i
             for i, (name, kind) in enumerate((n, k) for n in PORT_NAMES for k in ("", ".grpc"))}
    command = seaweed._command(tmp_path, "tansu", ports)
    assert {"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-bucket=tansu", f"-dir={tmp_path}"} <= set(command)
    for port in ports.values():  # every port chosen here, none left to weed's defaults
        assert sum(arg.endswith(f"={port}") for arg in command) == 1
    assert {"-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"} <= set(command)


def test_a_weed_that_exits_at_once_is_a_broker_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seaweed, "weed_binary", lambda: Path("/bin/false"))
    with pytest.raises(BrokerError, match="weed mini exited with 1"):
        start_seaweedfs(tmp_path / "data")


def test_a_tansu_that_cannot_start_is_a_broker_error() -> None:
    with pytest.raises(BrokerError, match=r"tansu exited with 1 .*postgres://nowhere/"):
        start_broker(storage="postgres://nowhere/")  # not compiled into this tansu build
