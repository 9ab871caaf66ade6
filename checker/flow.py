"""How an operation moves a model's state: hints a model may give the search.

A model with a `flow(op) -> Flow` method describes each operation in terms
the search can reason about without calling `step`: is it read-only, which
single state value does it need, which value does it leave. The search
uses these hints only to prune and to order its choices; every step it
takes is still decided by `step`, and every Ok is replayed against `step`.

A model that gives flows promises two things: an operation whose outcome is
unknown (output None) is accepted in every state, and each field below is
true of `step`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple


class Mark(Enum):
    ANY = "any"        # needs/watch: no single value
    KEEPS = "keeps"    # makes: never changes the state
    OPAQUE = "opaque"  # makes: the state after is not described
    BLIND = "blind"    # watch: accepted alike, and leaving the same state, everywhere


ANY = Mark.ANY
KEEPS = Mark.KEEPS
OPAQUE = Mark.OPAQUE
BLIND = Mark.BLIND


@dataclass(frozen=True, slots=True)
class Suffix:
    """`makes` of an append: the state after it is the state before it (a
    string) followed by `text`."""

    text: str


class Flow(NamedTuple):
    """The hints for one operation (a named tuple: the search builds one per
    operation, so it has to be cheap; `check` validates one)."""

    # Whenever it is accepted, the state stays as it was.
    read_only: bool = False
    # Accepted in every state, and read-only: it constrains nothing.
    free: bool = False
    # Accepted only in this state (ANY: no single required value).
    needs: Hashable = ANY
    # When it changes the state, the state after it: a value, a Suffix of it,
    # KEEPS (it never does) or OPAQUE (no telling).
    makes: Hashable = OPAQUE
    # Whenever it is accepted, the state after it is `makes` (a completed
    # write; a completed append for a Suffix).
    definite: bool = False
    # The one state value w its acceptance and effect depend on: in any two
    # states other than w it is accepted alike, and either keeps both states
    # or leaves the same one. ANY: no such value; BLIND: none at all (a write).
    watch: Hashable = ANY

    def check(self) -> None:
        assert not self.free or self.read_only, "a free operation is read-only"
        assert not self.definite or self.makes not in (KEEPS, OPAQUE), "definite needs makes"
        assert not self.read_only or self.makes in (KEEPS, OPAQUE), "read-only makes nothing"


__all__ = ["ANY", "BLIND", "KEEPS", "OPAQUE", "Flow", "Mark", "Suffix"]
