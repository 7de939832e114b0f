"""Typed errors. Every message names the input at fault and what to do about it.

The CLI turns a ``PriaError`` into one red line and ``exit_code``; anything else is a bug and
keeps its traceback.
"""


class PriaError(Exception):
    """Base class for errors a user or operator can act on."""

    exit_code = 1


class ConfigError(PriaError):
    """A setting is missing or invalid."""

    exit_code = 2


class DatabaseUnavailable(PriaError):
    """A configured database cannot be reached."""

    exit_code = 3


class MigrationError(PriaError):
    """The migration history and the files under ``sql/migrations`` disagree."""

    exit_code = 4


class StorageError(PriaError):
    """Object storage refused a read or write, or an object is missing."""

    exit_code = 5


class ObjectExists(StorageError):
    """A write would replace an immutable object."""


class DataError(PriaError):
    """Input data is missing, malformed or cannot be used as asked."""

    exit_code = 6


class RegistryError(PriaError):
    """A model_registry state change was refused; nothing was changed."""

    exit_code = 7


class BudgetExceeded(PriaError):
    """A training run would break the nightly cost budget."""

    exit_code = 8


class RegistryBusy(RegistryError):
    """The registry stayed locked by other changes through every retry; nothing was changed."""


class EndpointRotationFailed(PriaError):
    """Prod changed (committed) but the endpoint rotation hook did not confirm it.

    ``transition`` (a ``registry.Transition``) is the committed change, when the failure came
    after one, so the caller can still announce it."""

    exit_code = 9
    transition: object | None = None


class EncodingMissing(ConfigError):
    """The tiktoken encoding file is missing or is not the pinned encoding; nothing downloads."""


class TrainingError(PriaError):
    """Training stopped (out of memory, unusable checkpoint); nothing was uploaded."""

    exit_code = 10


class CheckpointError(TrainingError):
    """A training checkpoint is corrupt or belongs to another run's options or data."""


class ArtifactMismatch(StorageError):
    """A stored artifact is not the one its registry row describes (sha256 or location)."""


class GateBlocked(PriaError):
    """The promotion gate blocked the candidate (a decision, not a failure: it was recorded)."""

    exit_code = 11


class NightlyLocked(PriaError):
    """Another nightly run holds the lock for this date; nothing was done."""

    exit_code = 12
