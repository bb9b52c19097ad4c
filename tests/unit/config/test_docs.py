"""docs/configuration.md is generated from the schema and must not be stale."""

from __future__ import annotations

from emberd.config.directives import CORE
from emberd.config.docs import render
from tests.conftest import ROOT


def test_configuration_reference_is_up_to_date():
    committed = (ROOT / "docs/configuration.md").read_text()
    assert committed == render(), "docs/configuration.md is stale: run `make docs`"


def test_reference_lists_every_core_directive_and_feature_flag():
    text = render()
    for d in CORE:
        assert f"| `{d.key}` |" in text
        for sub in d.subkeys:
            assert f"| `{sub.key}` |" in text
