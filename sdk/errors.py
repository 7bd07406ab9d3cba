"""The exceptions Ember raises. Every message says what failed and what to do about it."""


class EmberError(Exception):
    """Base class of every error Ember raises on purpose."""


class ConfigError(EmberError):
    """A configuration file, flag or environment variable is invalid."""


class SourceError(EmberError):
    """A source URI cannot be opened or read (bad URI, missing file, unsupported format, wrong rate)."""

    def __init__(self, uri: str, problem: str, hint: str = "") -> None:
        self.uri = uri
        self.problem = problem
        self.hint = hint
        msg = f"{uri}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)


class PipelineError(EmberError):
    """A pipeline stage failed; `stage` names it."""

    def __init__(self, stage: str, message: str) -> None:
        self.stage = stage
        super().__init__(f"stage {stage!r}: {message}")


class ModelError(EmberError):
    """A model file, manifest or variant is unusable."""


class BackendError(ModelError):
    """A runtime backend is missing or failed to load/run a model."""


class TelemetryError(EmberError):
    """Telemetry could not be published, spooled or parsed."""


class ExportError(EmberError):
    """A model cannot be exported to C for the chosen target."""


class RolloutError(EmberError):
    """A model rollout step failed on the device (download, store, shadow test)."""


class RolloutRejected(RolloutError):
    """A bundle or rollout step was refused; ``reason`` is a short code (``bad_signature``, ``downgrade``, ...)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


class FetchError(RolloutError):
    """A download or chunked transfer failed; ``resumable`` says whether retrying continues where it stopped."""

    def __init__(self, code: str, message: str, resumable: bool = False) -> None:
        self.code = code
        self.resumable = resumable
        super().__init__(f"{code}: {message}")
