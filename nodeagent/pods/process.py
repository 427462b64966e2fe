"""Container processes: started inside the pod's network namespace in a session of their own
(so a signal reaches everything they started), watched through a pidfd (which works for
processes this agent did not start, after it restarted and adopted them), and stopped with
SIGTERM, the grace period, then SIGKILL."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import dataclass


@dataclass
class Proc:
    pid: int
    start_ticks: int            # /proc/<pid>/stat field 22: tells a reused pid from ours
    popen: subprocess.Popen | None = None

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.start_ticks


def start_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return -1
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = stat[stat.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return -1  # a zombie has exited
    return int(fields[19])


def start(netns: str, argv: list[str], env: dict[str, str], cwd: str | None, log_path: str) -> Proc:
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"--- started {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {argv!r}\n".encode())
        log.flush()
        cmd = (["ip", "netns", "exec", netns] if netns else []) + argv
        p = subprocess.Popen(cmd, env=env, cwd=cwd or None, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    # `ip netns exec` execs the command in place: the pid is the container's own
    return Proc(p.pid, start_ticks(p.pid), p)


async def wait_exit(proc: Proc) -> int | None:
    """Wait until the process ends; its exit code when it is our child, else None."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(proc.pid)
    except ProcessLookupError:
        fd = -1
    if fd >= 0:
        done = loop.create_future()
        loop.add_reader(fd, lambda: done.done() or done.set_result(None))
        try:
            await done
        finally:
            loop.remove_reader(fd)
            os.close(fd)
    if proc.popen is not None:
        code = proc.popen.wait()
        return 128 - code if code < 0 else code  # killed by a signal: 128 + signal, as a shell shows it
    while proc.alive():  # pidfd_open unavailable and not ours: poll
        await asyncio.sleep(0.2)
    return None


async def stop(proc: Proc, grace: float) -> None:
    if not proc.alive():
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while proc.alive() and time.monotonic() < deadline:
        if proc.popen is not None and proc.popen.poll() is not None:
            break
        await asyncio.sleep(0.05)
    if proc.alive() and (proc.popen is None or proc.popen.poll() is None):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
