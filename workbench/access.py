"""Which paths a user may name: anywhere when the workbench runs locally, only inside the data roots when
it is served to other machines.

Locally (the CLI, the app bound to loopback) a path is the user's own business. Served (the app bound to
another address, or `WORKBENCH_MODE=served`), every path a user types or a file names (a video, a dataset
and each video it lists, a checkpoint, a labels file, a run folder and the checkpoints its run.json names)
is resolved, symlinks included, and must lie inside one of the configured data roots
(`WORKBENCH_DATA_ROOTS`, folders joined by the system's path separator, or the app's setting), the
shipped demo assets or this server's upload folder. A path outside gets one message, the same whether it
exists or not, so the boxes cannot be used to probe the server's disk. The check happens before anything
looks at the path.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError

MODE_VAR = "WORKBENCH_MODE"  # local | served
ROOTS_VAR = "WORKBENCH_DATA_ROOTS"  # folders joined by os.pathsep
UPLOADS_VAR = "WORKBENCH_UPLOADS"  # where uploads are kept (default: the system temp folder)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
NOT_AVAILABLE = "that path is not available on this server (paths are confined to its data folders)"
ASSETS = Path(__file__).resolve().parent / "assets"


class PathNotAllowed(UserError, PermissionError):
    """A path outside the data roots of a served workbench (the message never says more)."""

    def __init__(self) -> None:
        super().__init__(NOT_AVAILABLE)


def upload_root() -> Path:
    """The folder under which uploads are kept (one subfolder per app session)."""
    return Path(os.environ.get(UPLOADS_VAR) or tempfile.gettempdir()) / "gate-shift-workbench-uploads"


def _real(path: str | Path) -> Path:
    """The absolute path with every symlink resolved (as far as it exists; loops stay as they are)."""
    return Path(os.path.realpath(os.path.expanduser(str(path))))


@dataclass(frozen=True)
class PathPolicy:
    """Where paths may point. `roots` None: anywhere (local); else inside one of them (served)."""

    roots: tuple[Path, ...] | None = None
    extra: tuple[Path, ...] = field(default=())  # server-owned folders also allowed when served

    @property
    def served(self) -> bool:
        """True when paths are confined."""
        return self.roots is not None

    def allows(self, path: str | Path) -> bool:
        """True when `path`, symlinks resolved, lies inside an allowed folder (always true locally)."""
        if self.roots is None:
            return True
        real = _real(path)
        return any(real == base or real.is_relative_to(base) for base in (*self.roots, *self.extra))

    def check(self, path: str | Path) -> Path:
        """`path` (~ expanded) when allowed; PathNotAllowed otherwise, before anything looks at it."""
        if not self.allows(path):
            raise PathNotAllowed()
        return Path(os.path.expanduser(str(path)))


LOCAL = PathPolicy()
_policy = LOCAL


def served_policy(roots: Iterable[str | Path]) -> PathPolicy:
    """Confined to `roots` (plus the shipped assets and the upload folder), symlinks resolved."""
    return PathPolicy(tuple(_real(r) for r in roots), (_real(ASSETS), _real(upload_root())))


def roots_from_env() -> list[str]:
    """The data roots named by $WORKBENCH_DATA_ROOTS (empty when unset)."""
    return [part for part in os.environ.get(ROOTS_VAR, "").split(os.pathsep) if part.strip()]


def is_served(address: str | None) -> bool:
    """Served when $WORKBENCH_MODE says so, or when the server listens beyond loopback ('' = every
    interface, Streamlit's default)."""
    mode = os.environ.get(MODE_VAR, "").strip().lower()
    if mode in ("served", "local"):
        return mode == "served"
    return (address or "").strip() not in LOOPBACK


def set_policy(policy: PathPolicy) -> None:
    """Install the process's policy (the app does, at start; the CLI stays local)."""
    global _policy
    _policy = policy


def current_policy() -> PathPolicy:
    """The policy paths are checked against in this process."""
    return _policy


def check_path(path: str | Path) -> Path:
    """`path` when this process's policy allows it; PathNotAllowed otherwise."""
    return _policy.check(path)
