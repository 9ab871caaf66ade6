"""Partition shapes as networkx graphs.

A partition is a directed graph over the member ids: an edge u -> v means
u's messages reach v. A `PartitionSpec` says which partition, explicitly
(so a schedule file can name it); `graph(spec)` builds it from networkx's
generators and unions, and the network turns the graph into a set of
allowed (u, v) pairs once, so the hot path is a set lookup.

Shapes (Jepsen's nemeses, plus the asymmetric one):
- halves: two sides, a minority and a majority;
- isolate_one: one node alone;
- isolate_leader: the current leader alone;
- majority_ring: nodes on a ring, each seeing its nearest neighbours, so
  every node sees a majority but no two see the same one (non-transitive);
- bridge: two halves joined only through one node that sees both;
- one_way: one node's outgoing (or incoming) links cut, the other
  direction working (an asymmetric fault).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from chainfire_core.types import NodeId

SHAPES = ("halves", "isolate_one", "isolate_leader", "majority_ring", "bridge", "one_way")


@dataclass(frozen=True, slots=True, kw_only=True)
class PartitionSpec:
    shape: str
    # halves / isolate_* / bridge: the sides (each fully connected inside);
    # majority_ring: one group, the ring order; one_way: ((victim,), others).
    groups: tuple[tuple[NodeId, ...], ...]
    # one_way only: "out" (the victim's messages are cut) or "in".
    direction: str = ""

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown partition shape {self.shape!r}")
        if self.shape == "one_way" and self.direction not in ("in", "out"):
            raise ValueError("a one_way partition needs direction in or out")

    def nodes(self) -> list[NodeId]:
        return sorted({n for group in self.groups for n in group})


def shapes_for(size: int) -> tuple[str, ...]:
    """The shapes that cut something in a cluster of `size` (a ring of three
    is everyone)."""
    return tuple(s for s in SHAPES if size >= 4 or s != "majority_ring")


def draw(shape: str, nodes: Sequence[NodeId], leader: NodeId | None,
         rng: random.Random) -> PartitionSpec:
    """A random partition of `shape` over `nodes`."""
    nodes = sorted(nodes)
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    if shape == "halves":
        cut = len(shuffled) // 2
        return PartitionSpec(shape=shape, groups=(tuple(sorted(shuffled[:cut])),
                                                  tuple(sorted(shuffled[cut:]))))
    if shape in ("isolate_one", "isolate_leader"):
        alone = leader if shape == "isolate_leader" and leader in nodes else shuffled[0]
        return PartitionSpec(shape=shape, groups=((alone,), tuple(n for n in nodes
                                                                  if n != alone)))
    if shape == "majority_ring":
        return PartitionSpec(shape=shape, groups=(tuple(shuffled),))
    if shape == "bridge":
        bridge_node, rest = shuffled[0], shuffled[1:]
        cut = len(rest) // 2
        return PartitionSpec(shape=shape, groups=(tuple(sorted([*rest[:cut], bridge_node])),
                                                  tuple(sorted([*rest[cut:], bridge_node]))))
    if shape == "one_way":
        victim = shuffled[0]
        direction = "out" if rng.random() < 0.5 else "in"
        return PartitionSpec(shape=shape, groups=((victim,), tuple(n for n in nodes
                                                                   if n != victim)),
                             direction=direction)
    raise ValueError(f"unknown partition shape {shape!r}")


def _complete(groups: Sequence[Sequence[NodeId]]) -> nx.DiGraph:
    graph = nx.DiGraph()
    for group in groups:
        graph = nx.compose(graph, nx.complete_graph(list(group), create_using=nx.DiGraph))
        graph.add_nodes_from(group)
    return graph


def graph(spec: PartitionSpec) -> nx.DiGraph:
    if spec.shape == "majority_ring":
        ring = list(spec.groups[0])
        result = nx.DiGraph()
        result.add_nodes_from(ring)
        # neighbours on each side: self + 2 * reach >= a majority, < everyone
        reach = (len(ring) // 2 + 1) // 2
        for position, node in enumerate(ring):
            for step in range(-reach, reach + 1):
                result.add_edge(node, ring[(position + step) % len(ring)])
        return result
    if spec.shape == "one_way":
        victim = spec.groups[0][0]
        result = _complete([spec.nodes()])
        for other in spec.groups[1]:
            result.remove_edge(*((victim, other) if spec.direction == "out" else (other, victim)))
        return result
    return _complete(spec.groups)


def build(shape: str, nodes: Sequence[NodeId], leader: NodeId | None,
          rng: random.Random) -> tuple[nx.DiGraph, list[list[NodeId]]]:
    """`draw` then `graph`: the graph and its groups (for the trace)."""
    spec = draw(shape, nodes, leader, rng)
    return graph(spec), [list(group) for group in spec.groups]


def allowed_pairs(partition: nx.DiGraph) -> frozenset[tuple[NodeId, NodeId]]:
    return frozenset((NodeId(u), NodeId(v)) for u, v in partition.edges())


__all__ = ["SHAPES", "PartitionSpec", "allowed_pairs", "build", "draw", "graph", "shapes_for"]
