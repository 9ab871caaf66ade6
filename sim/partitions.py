"""Partition shapes as networkx graphs.

A partition is a directed graph over the member ids: an edge u -> v means
u's messages reach v. Each shape is built from networkx's graph generators
and unions; the network turns the graph into a set of allowed (u, v) pairs
once, so the hot path is a set lookup.

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

import networkx as nx

from chainfire_core.types import NodeId

SHAPES = ("halves", "isolate_one", "isolate_leader", "majority_ring", "bridge", "one_way")


def shapes_for(size: int) -> tuple[str, ...]:
    """The shapes that cut something in a cluster of `size` (a ring of three
    is everyone)."""
    return tuple(s for s in SHAPES if size >= 4 or s != "majority_ring")


def _complete(groups: Sequence[Sequence[NodeId]]) -> nx.DiGraph:
    graph = nx.DiGraph()
    for group in groups:
        graph = nx.compose(graph, nx.complete_graph(list(group), create_using=nx.DiGraph))
        graph.add_nodes_from(group)
    return graph


def build(shape: str, nodes: Sequence[NodeId], leader: NodeId | None,
          rng: random.Random) -> tuple[nx.DiGraph, list[list[NodeId]]]:
    """The graph of `shape` over `nodes`, and its groups (for the trace)."""
    nodes = sorted(nodes)
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    if shape == "halves":
        cut = len(shuffled) // 2
        groups = [sorted(shuffled[:cut]), sorted(shuffled[cut:])]
        return _complete(groups), groups
    if shape in ("isolate_one", "isolate_leader"):
        alone = leader if shape == "isolate_leader" and leader in nodes else shuffled[0]
        rest = [n for n in nodes if n != alone]
        groups = [[alone], rest]
        return _complete(groups), groups
    if shape == "majority_ring":
        graph = nx.DiGraph()
        graph.add_nodes_from(nodes)
        # neighbours on each side: self + 2 * reach >= a majority, < everyone
        reach = (len(nodes) // 2 + 1) // 2
        for position, node in enumerate(shuffled):
            for step in range(-reach, reach + 1):
                other = shuffled[(position + step) % len(shuffled)]
                graph.add_edge(node, other)
        return graph, [[n] for n in shuffled]
    if shape == "bridge":
        bridge_node = shuffled[0]
        rest = shuffled[1:]
        cut = len(rest) // 2
        left, right = sorted([*rest[:cut], bridge_node]), sorted([*rest[cut:], bridge_node])
        graph = _complete([left, right])
        return graph, [left, right]
    if shape == "one_way":
        victim = shuffled[0]
        graph = _complete([nodes])
        outgoing = rng.random() < 0.5
        for other in nodes:
            if other != victim:
                graph.remove_edge(*((victim, other) if outgoing else (other, victim)))
        return graph, [[victim], [n for n in nodes if n != victim]]
    raise ValueError(f"unknown partition shape {shape!r}")


def allowed_pairs(graph: nx.DiGraph) -> frozenset[tuple[NodeId, NodeId]]:
    return frozenset((NodeId(u), NodeId(v)) for u, v in graph.edges())


__all__ = ["SHAPES", "allowed_pairs", "build", "shapes_for"]
