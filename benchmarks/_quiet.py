"""Keep library noise out of the benchmark tables.

The torch profiler's kineto backend writes ``USDT: ... profiler_start/stop`` lines straight to the
process's stderr (file descriptor 2, below Python), so :func:`quiet_stderr` redirects the
descriptor itself; :func:`quiet_warnings` drops Python warnings from the libraries the
benchmarks import (the tables are the output; a benchmark's own errors still raise).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 to /dev/null inside the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def quiet_warnings() -> None:
    """Ignore Python warnings for the rest of the process (and its children started later)."""
    warnings.filterwarnings("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"
