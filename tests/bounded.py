"""Run hostile input in a child process under a memory limit and a timeout, so that a regression (an alias bomb that
expands, a recursion that explodes) fails its test instead of eating the machine the tests share."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
#: address space the child may use: enough for Python, pydantic and PyYAML, far below what an expanding bomb takes
MEMORY_LIMIT_BYTES = 1 << 30
#: a guard against a hang, not a speed test: the refusals under test take well under a second
TIMEOUT_SECONDS = 60

# The child reports its own peak memory and time, so a failing test (and a curious reader) sees what it cost.
_REPORT = """
import resource as _resource, time as _time
_started = _time.perf_counter()
def report():
    peak_mib = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak {peak_mib:.0f} MiB, {_time.perf_counter() - _started:.2f} s")
"""


def run_bounded(source: str, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run Python `source` (which may call `report()`) in a child limited to MEMORY_LIMIT_BYTES and TIMEOUT_SECONDS;
    a child over its time is killed and subprocess.TimeoutExpired raised."""

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))

    return subprocess.run(
        [sys.executable, "-c", _REPORT + textwrap.dedent(source)],
        capture_output=True, text=True, timeout=TIMEOUT_SECONDS, preexec_fn=limit_memory, cwd=REPO_ROOT, env=env,
    )
