"""python -m bench.profiled OUT MODULE: run a service module under cProfile and write OUT when it ends.

`python -m cProfile` writes nothing when the process ends by a signal, and uvicorn re-raises
the SIGTERM it handled once it has shut down; here SIGTERM ends the process with
SystemExit instead, so the profile is written on the way out.
"""

from __future__ import annotations

import cProfile
import runpy
import signal
import sys
from types import FrameType


def _exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    out, module = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, _exit)
    sys.argv = [module]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    main()
