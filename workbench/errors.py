"""Every error a user can cause, on the bottom floor so that any layer can raise or catch them.

A `UserError` is a problem with the user's input (a file, an option, a dataset that does not fit a
model): the CLI prints its message as one `error:` line and exits 2, the app shows it as a message.
Anything else is our bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: reported as one line, no traceback."""


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


class VideoError(UserError):
    """An input that cannot be read as a video; the message names the file and the problem."""


class VideoWarning(UserWarning):
    """A video that is used, but not as a whole or not as it is (truncated, resized frames)."""


class DatasetError(UserError, ValueError):
    """A dataset that cannot be read, or whose classes do not fit the model."""


class DeviceError(UserError):
    """A device or precision the user asked for cannot be used here."""


class OptionError(UserError, ValueError):
    """A malformed option (`--model-option`, an analysis setting)."""


class AnalysisError(UserError, ValueError):
    """An analysis cannot run as asked (e.g. a run directory that holds another experiment)."""


class ExperimentError(AnalysisError):
    """A frame-order experiment cannot run as asked (classes do not fit, no models, ...)."""


class MemoryBudgetError(AnalysisError):
    """Work that does not fit the memory budget even at batch 1; the message says what would fit."""


class ReportError(AnalysisError):
    """A report cannot be built (nothing to report, a figure that cannot be drawn, ...)."""


class RunDirError(UserError, ValueError):
    """A run directory that cannot be read: missing, foreign, or of an unknown format."""


def is_user_error(err: BaseException) -> bool:
    """True when `err` should be shown as a one-line message."""
    return isinstance(err, (UserError, FileNotFoundError))
