"""Shared test fixtures and the tier markers.

Tiers follow the directory: tests/unit (pure), tests/fake (fake kernel backends), tests/api (the
API server on loopback), tests/kernel (real kernel in throwaway namespaces, root), tests/cluster
(multi-node, root), tests/vm (Vagrant VMs, root). `-m unit`, `-m "not kernel and not cluster"` and so on select them.
"""
from __future__ import annotations

import os
import secrets
import subprocess

import pytest

TIERS = {"unit": "unit", "fake": "fakekernel", "api": "api", "kernel": "kernel", "cluster": "cluster", "vm": "vm"}
ROOT_TIERS = {"kernel", "cluster", "vm"}
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = item.nodeid.split("/")
        tier = TIERS.get(parts[1]) if len(parts) > 2 and parts[0] == "tests" else None
        if tier:
            item.add_marker(getattr(pytest.mark, tier))
            if tier in ROOT_TIERS and not IS_ROOT:
                item.add_marker(pytest.mark.skip(reason="needs root (network namespaces)"))


def unique(prefix: str = "nat") -> str:
    """A short unique name: link names are limited to 15 characters."""
    return f"{prefix}{os.getpid() % 10000:04d}{secrets.token_hex(2)}"


@pytest.fixture
def netns():
    """A throwaway network namespace, always removed (with everything inside it) afterwards."""
    name = unique("nat-")
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
