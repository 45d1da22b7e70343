"""Where the bridge runs: inside Function Compute or not. Decides defaults that depend on it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def in_function_compute(context: Any = None, environ: Mapping[str, str] | None = None) -> bool:
    """True in an FC instance: FC sets FC_FUNCTION_NAME, and its context names the function."""
    environ = os.environ if environ is None else environ
    if environ.get("FC_FUNCTION_NAME"):
        return True
    return getattr(getattr(context, "function", None), "name", None) is not None
