"""Which back end decodes: decord where it is installed (faster), PyAV everywhere else."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..errors import OptionError

DECODERS = ("auto", "decord", "pyav")
ENV_VAR = "WORKBENCH_DECODER"  # auto | decord | pyav; set_decoder() overrides it
_chosen: str | None = None
# a choice for this thread only (an app session's run): beats the process-wide one
_in_context: ContextVar[str | None] = ContextVar("workbench_decoder", default=None)


def _checked(name: str, where: str) -> str:
    name = name.strip().lower()
    if name not in DECODERS:
        raise OptionError(f"{where} must be one of {', '.join(DECODERS)}, not {name!r}")
    return name


@contextmanager
def using_decoder(name: str | None) -> Iterator[None]:
    """While open, this thread (not the others: one app session's setting) decodes with `name`."""
    token = _in_context.set(None if name is None else _checked(name, "decoder"))
    try:
        yield
    finally:
        _in_context.reset(token)


def set_decoder(name: str | None) -> None:
    """Choose the back end for this process (CLI `--decoder`, the app's setting); None: back to the env."""
    global _chosen
    _chosen = None if name is None else _checked(name, "decoder")


def get_decoder() -> str:
    """The choice in force: this thread's (using_decoder), set_decoder's, $WORKBENCH_DECODER, or "auto"."""
    if _in_context.get() is not None:
        return _in_context.get()
    if _chosen is not None:
        return _chosen
    return _checked(os.environ.get(ENV_VAR) or "auto", f"${ENV_VAR}")


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except (ImportError, OSError):  # a module set to None in sys.modules (how tests hide decord), a bad .so
        return False
    return True


def available_decoders() -> list[str]:
    """The back ends that import here, fastest first."""
    return [name for name in ("decord", "pyav") if _importable("decord" if name == "decord" else "av")]


def resolve_decoder(requested: str | None = None) -> str:
    """The back end that decodes for a request: "auto" is decord where it imports, else PyAV. decord
    hands PyAV the files it cannot read (cut, damaged) or cannot seek in exactly (open GOPs)."""
    name = get_decoder() if requested is None else _checked(requested, "decoder")
    available = available_decoders()
    if name == "auto":
        return "decord" if "decord" in available else "pyav"
    if name not in available:
        installed = ", ".join(available) or "none"
        raise OptionError(f"decoder {name!r} is not installed here (available: {installed})")
    return name
