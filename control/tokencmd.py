"""`nodeagent token list|create|revoke`: bootstrap tokens, through the API (admin only)."""
from __future__ import annotations

import argparse
import asyncio

from .client import ApiClient, ApiStatusError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kubeconfig", default="/var/lib/nodeagent/admin.kubeconfig")
    sub = p.add_subparsers(dest="token_command", required=True)
    sub.add_parser("list", help="list join tokens (ids only; secrets are not kept)")
    c = sub.add_parser("create", help="create a join token and print it")
    c.add_argument("--ttl", default="24h")
    c.add_argument("--description", default="")
    r = sub.add_parser("revoke", help="revoke a join token")
    r.add_argument("id", help="the token id (the part before the dot)")


def run(args: argparse.Namespace) -> int:
    async def go() -> int:
        client = ApiClient.from_kubeconfig(args.kubeconfig)
        try:
            if args.token_command == "list":
                items = (await client.request("GET", "/bootstrap/v1/tokens"))["items"]
                print(f"{'ID':8} {'EXPIRES':22} {'STATE':8} DESCRIPTION")
                for t in items:
                    print(f"{t['id']:8} {t['expires'] or '<never>':22} {'expired' if t['expired'] else 'valid':8} {t['description']}")
            elif args.token_command == "create":
                t = await client.request("POST", "/bootstrap/v1/tokens", body={"ttl": args.ttl, "description": args.description})
                print(t["token"])
            else:
                await client.request("DELETE", f"/bootstrap/v1/tokens/{args.id}")
                print(f"token {args.id} revoked")
            return 0
        except ApiStatusError as err:
            print(f"error: {err.status.get('message', err)}")
            return 1
        finally:
            await client.close()
    return asyncio.run(go())
