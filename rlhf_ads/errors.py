"""User-facing errors: each carries one line that says what is wrong and how to fix it."""


class RlhfAdsError(Exception):
    """An error the user can fix; the CLI prints its message alone, without a traceback."""


class ConfigError(RlhfAdsError):
    """A recipe or a command-line override is malformed."""


class ModelLoadError(RlhfAdsError):
    """A base model could not be resolved or read."""


class DataError(RlhfAdsError):
    """A data file or row is malformed."""
