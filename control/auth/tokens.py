"""Bearer tokens: bootstrap (join) tokens kept in the store, and a static token file.

A bootstrap token is `<id>.<secret>` (kubeadm's format: 6 + 16 characters of [a-z0-9]). Only the
id and a SHA-256 of the secret are stored, so neither the store nor a backup of it can be used to
join a node. A revoked token is deleted; an expired one is refused and pruned.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import re
import secrets
import string

from ..store import Create, Delete, KeyExists, Store
from .authz import User

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
PREFIX = "/registry/bootstraptokens/"
ALPHABET = string.ascii_lowercase + string.digits


class TokenError(Exception):
    pass


def new_token() -> str:
    pick = lambda n: "".join(secrets.choice(ALPHABET) for _ in range(n))
    return f"{pick(6)}.{pick(16)}"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _fmt(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)


def parse_ttl(text: str) -> int:
    """`24h`, `30m`, `90s` or plain seconds; 0 means the token never expires."""
    m = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not m:
        raise TokenError(f"invalid duration {text!r}: use e.g. 24h, 30m, 90s")
    return int(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


class BootstrapTokens:
    def __init__(self, store: Store):
        self.store = store

    async def create(self, ttl_seconds: int, description: str = "", token: str | None = None) -> tuple[str, dict]:
        """A new token, or the given one (as `kubeadm init --token`: a deployment tool can then
        hand it to its workers before the control node exists). Giving an existing token again
        is not an error when its secret matches: `init` may run twice."""
        if token is not None and not TOKEN_RE.match(token):
            raise TokenError("a join token has the form [a-z0-9]{6}.[a-z0-9]{16}")
        given = token is not None
        for _ in range(1 if given else 5):
            token = token or new_token()
            tid, secret = token.split(".")
            now = dt.datetime.now(dt.timezone.utc)
            record = {"metadata": {"name": tid}, "secretHash": _hash(secret), "created": _fmt(now),
                      "description": description}
            if ttl_seconds:
                record["expires"] = _fmt(now + dt.timedelta(seconds=ttl_seconds))
            try:
                await self.store.commit([Create(PREFIX + tid, record)])
                return token, public(record)
            except KeyExists:
                if given:
                    rec = await self.store.get(PREFIX + tid)
                    if rec is not None and hmac.compare_digest(rec.obj["secretHash"], record["secretHash"]):
                        return token, public(rec.obj)
                    raise TokenError(f"a token with id {tid} exists with another secret") from None
                token = None
        raise TokenError("could not pick an unused token id")

    async def list(self) -> list[dict]:
        recs, _, _ = await self.store.list(PREFIX)
        return [public(r.obj) for r in recs]

    async def revoke(self, tid: str) -> bool:
        rec = await self.store.get(PREFIX + tid)
        if rec is None:
            return False
        await self.store.commit([Delete(rec.key, rec.mod_rev)])
        return True

    async def check(self, token: str) -> str:
        """The token's id if the token is valid now; raises TokenError otherwise (same message
        for every failure, so a caller learns nothing about which ids exist)."""
        m = TOKEN_RE.match(token or "")
        if not m:
            raise TokenError("invalid bootstrap token")
        rec = await self.store.get(PREFIX + m.group(1))
        if rec is None or not hmac.compare_digest(rec.obj["secretHash"], _hash(m.group(2))):
            raise TokenError("invalid bootstrap token")
        exp = rec.obj.get("expires")
        if exp and _parse(exp) <= dt.datetime.now(dt.timezone.utc):
            raise TokenError("invalid bootstrap token")
        return m.group(1)


def public(record: dict) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    exp = record.get("expires")
    return {"id": record["metadata"]["name"], "created": record.get("created"), "expires": exp,
            "expired": bool(exp and _parse(exp) <= now), "description": record.get("description", "")}


class StaticTokens:
    """kube-apiserver's --token-auth-file: lines of `token,user,uid[,"group1,group2"]`."""

    def __init__(self, path: str | None):
        self._by_hash: dict[str, User] = {}
        if path:
            with open(path, newline="") as f:
                for row in csv.reader(f):
                    if not row or row[0].startswith("#"):
                        continue
                    if len(row) < 3:
                        raise TokenError(f"{path}: each line needs token,user,uid[,groups]")
                    groups = tuple(g for g in (row[3].split(",") if len(row) > 3 else []) if g)
                    self._by_hash[_hash(row[0])] = User(row[1], groups)

    def user(self, token: str) -> User | None:
        # The dictionary is keyed by the token's hash, so the lookup does not compare secrets.
        return self._by_hash.get(_hash(token))
