"""Shared by the tests of the Buildroot tree: its paths and its selection tool."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

# the checks against a Buildroot checkout run only when one is given (make buildroot-check)
collect_ignore = [] if os.environ.get("EMBERD_BUILDROOT") else ["test_with_buildroot.py"]

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "buildroot"
SRC = ROOT / "src" / "emberd"


def load_select() -> ModuleType:
    """buildroot/scripts/emberd_select.py, imported from its path."""
    name = "emberd_select"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TREE / "scripts" / "emberd_select.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    # no __pycache__ in the Buildroot tree
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = dont_write
    return module


@pytest.fixture(scope="session")
def select() -> ModuleType:
    return load_select()


def module_files() -> list[str]:
    """The optional modules: one file each in src/emberd/modules."""
    return sorted(p.stem for p in (SRC / "modules").glob("*.py") if p.stem != "__init__")
