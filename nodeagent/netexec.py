"""The built-in test server, in the spirit of Kubernetes' e2e `agnhost netexec`.

    nodeagent netexec [--http-port 8080] [--tcp-port 0] [--udp-port 0]
                      [--health-status "Ratings is healthy"] [--delay-shutdown SECONDS]

HTTP: /hostname (the pod's name), /node (the node it runs on), /echo?msg=..., /clientip (the
source address and port as this server sees them, which is how tests check masquerading), /health
(JSON like the seed's bookinfo checks: {"status": "... is healthy"}), and / (all of it as JSON).
TCP and UDP ports echo what they receive. Standard library only, so it starts in milliseconds.
Pod and node names come from POD_NAME / NODE_NAME (the pod runtime sets them), else the host name.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from urllib.parse import parse_qs, urlsplit


def identity() -> dict:
    return {"pod": os.environ.get("POD_NAME") or socket.gethostname(),
            "node": os.environ.get("NODE_NAME", ""),
            "namespace": os.environ.get("POD_NAMESPACE", "")}


class HttpHandler:
    def __init__(self, health_status: str):
        self.health = health_status

    def route(self, target: str, peer: tuple) -> tuple[int, str, bytes]:
        url = urlsplit(target)
        me = identity()
        client = f"{peer[0]}:{peer[1]}"
        if url.path == "/hostname":
            return 200, "text/plain", me["pod"].encode()
        if url.path == "/node":
            return 200, "text/plain", me["node"].encode()
        if url.path == "/clientip":
            return 200, "text/plain", client.encode()
        if url.path == "/echo":
            return 200, "text/plain", parse_qs(url.query).get("msg", [""])[0].encode()
        if url.path == "/health":
            return 200, "application/json", json.dumps({"status": self.health}).encode()
        if url.path == "/":
            return 200, "application/json", json.dumps({**me, "client": client, "status": self.health}).encode()
        return 404, "text/plain", b"not found\n"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[:2]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    break
                method, target, version = parts
                headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(min(length, 1 << 20))
                code, ctype, body = self.route(target, peer) if method in ("GET", "HEAD") else (405, "text/plain", b"")
                close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
                writer.write((f"HTTP/1.1 {code} {'OK' if code == 200 else 'Error'}\r\nContent-Type: {ctype}\r\n"
                              f"Content-Length: {len(body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n").encode()
                             + (body if method != "HEAD" else b""))
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def tcp_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


class UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        # The reply names the pod, so a UDP client can tell which endpoint answered.
        self.transport.sendto(identity()["pod"].encode() + b" " + data, addr)


async def main_async(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    servers = [await asyncio.start_server(HttpHandler(args.health_status).serve, args.address, args.http_port,
                                          reuse_address=True)]
    if args.tcp_port:
        servers.append(await asyncio.start_server(tcp_echo, args.address, args.tcp_port, reuse_address=True))
    if args.udp_port:
        await loop.create_datagram_endpoint(UdpEcho, local_addr=(args.address, args.udp_port))
    print(f"netexec serving http :{args.http_port}" + (f" tcp :{args.tcp_port}" if args.tcp_port else "")
          + (f" udp :{args.udp_port}" if args.udp_port else ""), flush=True)
    await stop
    if args.delay_shutdown:
        # agnhost's --delay-shutdown: keep serving a while after SIGTERM, so that requests sent
        # before every proxy has removed this endpoint still get answers.
        await asyncio.sleep(args.delay_shutdown)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--tcp-port", type=int, default=0, help="TCP echo port (0: none)")
    p.add_argument("--udp-port", type=int, default=0, help="UDP echo port (0: none)")
    p.add_argument("--address", default="0.0.0.0")
    p.add_argument("--health-status", default="", help='the /health status text (default: "<pod> is healthy")')
    p.add_argument("--delay-shutdown", type=float, default=0.0, metavar="SECONDS",
                   help="keep serving this long after SIGTERM (as agnhost netexec --delay-shutdown)")


def run(args: argparse.Namespace) -> int:
    if not args.health_status:
        args.health_status = f"{identity()['pod']} is healthy"
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="nodeagent netexec", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
