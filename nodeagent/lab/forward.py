"""A TCP forwarder from this machine's loopback into a lab namespace, so that kubectl on the host
reaches the lab's API server without the lab adding any link or route to the host's network.

Each upstream socket is created on a short-lived thread that has entered the lab's namespace (a
socket keeps the namespace it was created in); the forwarder itself never leaves the host's."""
from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys

from nodeagent.proxy.netns import socket_in


def connect_in(ns_name: str, host: str, port: int) -> socket.socket:
    """A connection made from inside the namespace (the socket stays in it)."""
    s = socket_in(ns_name, socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect((host, port))
        s.setblocking(False)
        return s
    except OSError:
        s.close()
        raise


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def serve(listen: str, listen_port: int, ns_name: str, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            up = await loop.run_in_executor(None, connect_in, ns_name, host, port)
        except OSError:
            w.close()
            return
        ur, uw = await asyncio.open_connection(sock=up)
        await asyncio.gather(pipe(r, uw), pipe(ur, w))

    server = await asyncio.start_server(handle, listen, listen_port, reuse_address=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m nodeagent.lab.forward")
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--netns", required=True, help="name of the namespace, e.g. nal-lab-ul")
    p.add_argument("--to", required=True, metavar="HOST:PORT")
    p.add_argument("--state", default="", help="the lab's state dir: marks this process as the lab's")
    a = p.parse_args(argv)
    host, _, port = a.to.rpartition(":")
    asyncio.run(serve(a.listen, a.port, a.netns, host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
