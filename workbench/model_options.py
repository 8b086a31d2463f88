"""`--model-option KEY=VALUE`: what a checkpoint cannot say about itself, given on the command line.

The authors' release files (GSM, GSF, TSM, TSN) hold weights only: the number of frames and the
class names come from the user (`frames=16`, `classes=labels.txt`), and a few other settings may be
corrected (`backbone=inceptionv3`, `shift_div=4`, `input_size=229`, `resize=261`). torchvision and
MMAction2 files take the same keys (an MMAction2 file without `meta.cfg` needs `frames=`). The options go
to `workbench.load_model(path, **model_overrides(args))`, which checks them against the file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .access import NOT_AVAILABLE, current_policy
from .errors import OptionError


def _positive_int(key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise OptionError(f"--model-option {key}={value!r}: expected a whole number") from None
    if number < 1:
        raise OptionError(f"--model-option {key}={value!r}: must be at least 1")
    return number


def _labels_file(key: str, value: str) -> list[str]:
    path = Path(value)
    if not current_policy().allows(path):  # served: the file is not read, nor said to exist
        raise OptionError(f"--model-option {key}=...: {NOT_AVAILABLE}")
    if not path.is_file():
        raise OptionError(f"--model-option {key}={value!r}: no such labels file (one class name per line)")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise OptionError(f"--model-option {key}={value!r}: the labels file has no class names")
    return names


def _text(key: str, value: str) -> str:
    if not value.strip():
        raise OptionError(f"--model-option {key}=: give a value")
    return value.strip()


# option -> (load_model keyword, parser of the text value)
OPTIONS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "frames": ("frames", _positive_int),
    "classes": ("class_names", _labels_file),
    "backbone": ("backbone", _text),
    "shift_div": ("shift_div", _positive_int),
    "input_size": ("input_size", _positive_int),
    "resize": ("resize", _positive_int),
}


def parse_model_options(items: Iterable[str]) -> dict[str, Any]:
    """`["frames=16", "classes=labels.txt"]` -> load_model keyword arguments; bad input is an OptionError."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep:
            raise OptionError(f"--model-option {item!r}: expected KEY=VALUE, e.g. frames=16")
        if key not in OPTIONS:
            raise OptionError(f"--model-option {item!r}: unknown key {key!r}; "
                              f"choose from {', '.join(OPTIONS)}")
        name, parse = OPTIONS[key]
        if name in overrides:
            raise OptionError(f"--model-option {key} given twice")
        overrides[name] = parse(key, value)
    return overrides
