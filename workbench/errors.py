"""Which exceptions are the user's input problems (reported in one line) rather than our bugs."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user."""
    from .cli import UserError
    from .models.checkpoint import CheckpointError

    types: list[type[BaseException]] = [UserError, CheckpointError, FileNotFoundError]
    try:
        from .video import VideoError

        types.append(VideoError)
    except ImportError:  # pragma: no cover - video module always present in a full checkout
        pass
    return tuple(types)


def is_user_error(err: BaseException) -> bool:
    """True when `err` should be shown as a one-line message."""
    return isinstance(err, user_error_types())
