"""Pictures of simulator traces and sweeps, shared by the CLI and notebooks.

Theory of operation: each module draws one view from a `TraceData`
(sim/tracedata.py) or a sweep's rows, and returns a plain matplotlib
`Figure` on its own Agg canvas (no pyplot state, no global backend), with a
title, axis labels with units and a legend; `save_png` writes one. Input
that cannot be drawn raises `ViewError` (or `TraceDataError` from loading);
input with nothing in it gives a labelled figure that says so.

- `timeline_figure`: client ops per lane, node faults, leader per term;
- `sequence_figure`: a message-sequence diagram of a time window;
- `progress_figure`: commit and applied index per node over time;
- `latency_figure`: latency percentiles per time bucket, ops per bucket;
- `availability_figure` (rows from `load_sweep`): success rate and latency
  per fault class across a sweep;
- `illegal_figure`: a failed linearizability check's ops and window.

docs/views.md shows each with an example.
"""

from sim.views._common import FaultSpan, ViewError, fault_spans, save_png
from sim.views.availability import availability, availability_figure, load_sweep
from sim.views.illegal import check_history, history_operations, illegal_figure
from sim.views.latency import latency_figure
from sim.views.progress import progress_figure
from sim.views.sequence import sequence_figure
from sim.views.timeline import timeline_figure, write_timeline_png

__all__ = ["FaultSpan", "ViewError", "availability", "availability_figure", "check_history",
           "fault_spans", "history_operations", "illegal_figure", "latency_figure",
           "load_sweep", "progress_figure", "save_png", "sequence_figure", "timeline_figure",
           "write_timeline_png"]
