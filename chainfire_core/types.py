"""Typed identifiers shared by every part of the core.

They are `NewType`s over `int`: free at run time, but mypy keeps a `Revision`
from being passed where a `LeaseId` is expected.
"""

from __future__ import annotations

from typing import NewType

NodeId = NewType("NodeId", int)
Term = NewType("Term", int)
Index = NewType("Index", int)
Revision = NewType("Revision", int)
LeaseId = NewType("LeaseId", int)
WatchId = NewType("WatchId", int)

NO_LEASE = LeaseId(0)

__all__ = ["NO_LEASE", "Index", "LeaseId", "NodeId", "Revision", "Term", "WatchId"]
