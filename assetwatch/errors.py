"""One exception root; small subclasses raised where the failure happens."""


class AssetwatchError(Exception):
    """Root of every error assetwatch raises on purpose."""


class ConfigError(AssetwatchError):
    """A profile, setting or file is not usable as given."""


class SerializationError(AssetwatchError):
    """A record could not be encoded or decoded with its Avro contract."""


class InvalidReadingError(AssetwatchError):
    """A reading breaks its profile's rules; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ModelUnavailableError(AssetwatchError):
    """No model could be loaded for a profile from any source in the fallback chain."""


class BrokerError(AssetwatchError):
    """The broker could not be started, reached or prepared."""


class ModelRejectedError(AssetwatchError):
    """A model version failed the checks a worker runs before serving it."""


class WorkerError(AssetwatchError):
    """A worker subprocess exited, or did not become ready in time."""


class EvaluationError(AssetwatchError):
    """An evaluation run could not account for every reading it sent."""
