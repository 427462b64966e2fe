"""Readiness and liveness probes, run from the node as kubelet runs them: httpGet and tcpSocket
connect to the pod's IP; exec runs a command inside the pod's network namespace."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass


async def http_get(ip: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except (OSError, TimeoutError) as err:
        return False, f"Get http://{ip}:{port}{path}: {err or 'timeout'}"
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: nodeagent-probe\r\n"
                     "Connection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        # kubelet: any code from 200 to 399 is a success
        return 200 <= code < 400, f"HTTP probe failed with statuscode: {code}"
    except (OSError, TimeoutError, ValueError) as err:
        return False, f"Get http://{ip}:{port}{path}: {err or 'timeout'}"
    finally:
        writer.close()


async def tcp(ip: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
        writer.close()
        return True, ""
    except (OSError, TimeoutError) as err:
        return False, f"dial tcp {ip}:{port}: {err or 'timeout'}"


async def exec_in(netns: str, argv: list[str], timeout: float) -> tuple[bool, str]:
    cmd = (["ip", "netns", "exec", netns] if netns else []) + argv
    try:
        p = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.DEVNULL,
                                                 stderr=asyncio.subprocess.DEVNULL)
    except OSError as err:
        return False, str(err)
    try:
        code = await asyncio.wait_for(p.wait(), timeout)
        return code == 0, f"command exited with {code}"
    except TimeoutError:
        p.kill()
        await p.wait()
        return False, f"command timed out after {timeout}s"


@dataclass
class ProbeState:
    """Consecutive results against the thresholds: the probe's verdict flips only when a run of
    successes or failures reaches its threshold."""
    success_threshold: int
    failure_threshold: int
    ok: bool
    successes: int = 0
    failures: int = 0
    message: str = ""

    def record(self, ok: bool, message: str = "") -> bool:
        """Record one result; True when the verdict changed."""
        before = self.ok
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.success_threshold:
                self.ok = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            self.message = message
            if self.failures >= self.failure_threshold:
                self.ok = False
        return self.ok != before
