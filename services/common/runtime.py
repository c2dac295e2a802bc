"""Process-wide runtime settings every service applies when it starts."""

from __future__ import annotations

import gc

# CPython collects its youngest generation every 700 allocations by default. A worker
# streaming a page allocates a model object per token and a gateway a frame per reader,
# so collections ran hundreds of times a second and the longer ones showed as event-loop
# stalls: in the benchmark at 200 readers, text-delta p99 27.6 ms and max 150 ms with the
# defaults, 17.7 ms and 75 ms with these (docs/benchmarks.md).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Collect less often, and leave what was loaded at start out of every collection."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
