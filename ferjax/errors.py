"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class FerjaxError(Exception):
    """An error caused by the user's input (config, files, data), not by a bug."""


class ConfigError(FerjaxError):
    """A config value is unknown or invalid."""


class DataError(FerjaxError):
    """A dataset is missing, malformed or inconsistent."""


class TrainingDiverged(FerjaxError):
    """The loss became NaN or Inf."""


class CheckpointError(FerjaxError):
    """No intact checkpoint where one is needed, or a checkpoint cannot be written."""


class RunError(FerjaxError):
    """A workdir is not a usable ferjax run (no run.json, unknown model, other config)."""


class TrainingInterrupted(FerjaxError):
    """The user stopped training (Ctrl-C); the run resumes with the same command."""


class MissingExtra(FerjaxError):
    """An optional dependency group (e.g. ``pip install 'ferjax[predict]'``) is not installed."""
