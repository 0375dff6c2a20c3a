"""The one user-facing error type. The CLI catches it once, prints one red line, exits 2.

Anything else is a bug and keeps its traceback.
"""


class DscbenchError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class SpecError(DscbenchError):
    """An invalid sweep specification: a flag, a spec file or a preset."""


class ResultsError(DscbenchError):
    """A result file or directory that cannot be written or read."""


class BackendUnavailable(DscbenchError):
    """A backend that was asked for but cannot run on this machine."""


class ModelError(DscbenchError):
    """A model of the user's own that cannot be imported, built or run on its input shape."""


class DataError(DscbenchError):
    """A data set that cannot be read, is inconsistent, or does not fit the model."""
