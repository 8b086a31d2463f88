"""A pytest plugin (`-p tests.hide_decord`): decord unimportable, as where its wheel does not exist."""

import sys

sys.modules["decord"] = None  # type: ignore[assignment]  # `import decord` now raises ImportError
