"""The messy-file generator for the tests: bench/ is not a package, so it is loaded by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_messy", REPO / "bench" / "generate_messy.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("generate_messy", module)
    spec.loader.exec_module(module)
    return module
