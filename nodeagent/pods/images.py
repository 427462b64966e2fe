"""Built-in images: names that map to programs of ours, since images are not pulled."""
from __future__ import annotations

import sys

NETEXEC = [sys.executable, "-m", "nodeagent.netexec"]

# image name (without tag) -> argv that stands for the image's entrypoint
BUILTIN: dict[str, list[str]] = {
    "nodeagent/netexec": NETEXEC,
    "netexec": NETEXEC,
}


def base_name(image: str) -> str:
    name = image.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for registry in ("docker.io/", "registry.k8s.io/", "ghcr.io/"):
        if name.startswith(registry):
            name = name[len(registry):]
    return name


def entrypoint(image: str) -> list[str] | None:
    """The argv of a built-in image's entrypoint, or None when the image is not built in.
    Kubernetes' e2e agnhost image runs netexec as `agnhost netexec ...`: supported too."""
    name = base_name(image or "")
    if name in BUILTIN:
        return list(BUILTIN[name])
    if name in ("e2e-test-images/agnhost", "agnhost"):
        return ["agnhost"]
    return None
