"""One exception root; small subclasses raised where the failure happens."""

from __future__ import annotations


class AssetwatchError(Exception):
    """Root of every error assetwatch raises on purpose."""


class ConfigError(AssetwatchError):
    """A profile, setting or file is not usable as given."""


class MissingExtraError(ConfigError):
    """A verb or setting needs an optional extra (``assetwatch[train]``...) not installed."""


class SerializationError(AssetwatchError):
    """A record could not be encoded or decoded with its Avro contract."""


class ForeignStateError(SerializationError):
    """A stored feature state is another profile's: the asset's readings changed type."""


class InvalidReadingError(AssetwatchError):
    """A reading breaks its profile's rules; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[InvalidReadingError], tuple[str, str]]:
        """Pickles with both arguments (the default would re-create it from the message)."""
        return type(self), (self.reason, self.detail)


class ScoringHelperError(AssetwatchError):
    """A batch failed in the scoring helper process; the cause travels as text.

    Third-party exceptions (confluent-kafka's among them) may not pickle, and one that cannot
    cross back from the helper would crash the agent with a PicklingError instead.
    """


class ScoringHelperLostError(AssetwatchError):
    """The scoring helper died and could not be replaced: the worker must exit, not hang."""


class ModelUnavailableError(AssetwatchError):
    """No model could be loaded for a profile from any source in the fallback chain."""


class BrokerError(AssetwatchError):
    """The broker could not be started, reached or prepared."""


class ModelRejectedError(AssetwatchError):
    """A model version could not be loaded or failed a check; ``step`` names which one."""

    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail

    def __reduce__(self) -> tuple[type[ModelRejectedError], tuple[str, str]]:
        return ModelRejectedError, (self.step, self.detail)  # picklable across processes


class ModelArtifactError(ModelRejectedError):
    """A version's data-only serving artifacts are missing, malformed or corrupt."""

    def __init__(self, detail: str) -> None:
        super().__init__("load", detail)

    def __reduce__(self) -> tuple[type[ModelArtifactError], tuple[str]]:  # type: ignore[override]
        return ModelArtifactError, (self.detail,)



class RegistryUnavailableError(ModelUnavailableError):
    """The model registry could not be reached or did not answer."""


class WorkerError(AssetwatchError):
    """A worker subprocess exited, or did not become ready in time."""


class EvaluationError(AssetwatchError):
    """An evaluation run could not account for every reading it sent."""
