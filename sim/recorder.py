"""The client-side history: every operation's call, answer and times.

Each operation becomes a `checker.history.Operation` in the etcd model's
JSON schema (sim/history_json.py) and three trace records (`call`, then
`return` or `timeout`). Times are simulated milliseconds at the client: the
call when it first sent the request, the return when the final answer
arrived, so retries inside an operation stay inside its interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chainfire_core.node_messages import ClientRequest
from chainfire_core.types import NodeId
from checker.history import Operation
from sim.history_json import request_json, response_json
from sim.trace import Trace


@dataclass(slots=True)
class _Open:
    id: int
    client: int
    request: ClientRequest
    input: dict[str, Any]
    call: float


class History:
    def __init__(self, env_now: Any, trace: Trace) -> None:
        self._now = env_now
        self.trace = trace
        self.operations: list[Operation] = []
        self._open: dict[int, _Open] = {}
        self._next_id = 1
        self.ok = 0
        self.failed = 0
        self.unknown = 0
        self.latencies_ms: list[float] = []

    def begin(self, client: int, node: NodeId, request: ClientRequest,
              serializable: bool) -> int:
        op_id = self._next_id
        self._next_id += 1
        now = self._now()
        payload = request_json(request, serializable=serializable)
        self._open[op_id] = _Open(id=op_id, client=client, request=request, input=payload,
                                  call=now)
        self.trace.emit(now, "call", client=client, op=op_id, node=node, input=payload)
        return op_id

    def finish(self, op_id: int, response: object) -> dict[str, Any]:
        opened = self._open[op_id]
        output = response_json(opened.request, response)
        self._close(opened, output)
        self.ok += 1
        return output

    def fail(self, op_id: int, output: dict[str, Any]) -> None:
        self._close(self._open[op_id], output)
        self.failed += 1

    def _close(self, opened: _Open, output: dict[str, Any]) -> None:
        del self._open[opened.id]
        now = self._now()
        self.latencies_ms.append(now - opened.call)
        self.trace.emit(now, "return", client=opened.client, op=opened.id, output=output)
        self.operations.append(Operation(id=opened.id, client=opened.client, input=opened.input,
                                         call=opened.call, output=output, return_time=now))

    def indeterminate(self, op_id: int) -> None:
        opened = self._open.pop(op_id)
        self.unknown += 1
        self.trace.emit(self._now(), "timeout", client=opened.client, op=op_id)
        self.operations.append(Operation(id=opened.id, client=opened.client, input=opened.input,
                                         call=opened.call, output=None, unknown=True))

    def close_open(self) -> None:
        """Operations still waiting when the run ends: their outcome is unknown."""
        for op_id in sorted(self._open):
            self.indeterminate(op_id)

    def sorted_operations(self) -> list[Operation]:
        return sorted(self.operations, key=lambda op: op.id)


__all__ = ["History"]
