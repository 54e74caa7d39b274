"""User-facing errors: the CLI prints their message on one line and exits non-zero."""


class FerjaxError(Exception):
    """An error caused by the user's input (config, files, data), not by a bug."""


class ConfigError(FerjaxError):
    """A config value is unknown or invalid."""


class DataError(FerjaxError):
    """A dataset is missing, malformed or inconsistent."""


class TrainingDiverged(FerjaxError):
    """The loss became NaN or Inf."""
