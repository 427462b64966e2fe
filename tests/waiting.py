"""Polling until a condition holds, for the tiers that wait on processes, kernels and VMs."""
from __future__ import annotations

import time


def wait(cond, timeout: float = 60.0, what: str = "condition", every: float = 0.2):
    """cond()'s first truthy value, polled every `every` seconds; AssertionError after timeout
    (naming the last value seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
