"""What the API benchmarks share: a minimal HTTP/1.1 exchange on a keep-alive asyncio connection
(about a fifth of a core per thousand requests; one httpx process tops out near 500-700 requests
per second here and would measure itself), and stopping a server process."""
from __future__ import annotations

import asyncio
import subprocess


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[bytes, bytes]:
    """Send one whole request; (status line and headers, body) of the answer."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().partition(b"content-length:")[2].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


def stop(proc: subprocess.Popen, timeout: float = 5) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
