"""Suite-wide: tests marked `slow` (long sweeps) run only when selected with
`-m slow`; otherwise they are skipped with that reason."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="long sweep: select it with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
