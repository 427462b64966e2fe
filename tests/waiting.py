"""Polling until a condition holds, for the tiers that wait on processes, kernels and VMs."""
from __future__ import annotations

import time


def wait(cond, timeout: float = 60.0, what: str = "condition", every: float = 0.2):
    """cond()'s first truthy value, polled every `every` seconds; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
