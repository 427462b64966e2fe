"""The namespace fixture itself: it makes an isolated namespace and always removes it."""
import socket
import subprocess
import sys

import pytest

from tests.conftest import netns as _netns_fixture  # noqa: F401  (documented fixture under test)


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_namespace_exists_is_isolated_and_has_loopback(netns):
    assert netns in namespaces()
    links = subprocess.run(["ip", "-n", netns, "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert [l.split(":")[1].strip() for l in links.splitlines()] == ["lo"]
    # A listener on the host's loopback is not reachable from inside; one inside is.
    with socket.socket() as host_listener:
        host_listener.bind(("127.0.0.1", 0))
        host_listener.listen()
        port = host_listener.getsockname()[1]
        probe = ("import socket,sys\n"
                 "def ok(p):\n"
                 "    try: socket.create_connection(('127.0.0.1', p), 1).close(); return 1\n"
                 "    except OSError: return 0\n"
                 "inside = socket.socket(); inside.bind(('127.0.0.1', 0)); inside.listen()\n"
                 "print(ok(int(sys.argv[1])), ok(inside.getsockname()[1]))\n")
        out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", probe, str(port)],
                             capture_output=True, text=True, check=True).stdout.split()
    assert out == ["0", "1"]


def test_namespace_is_removed_even_when_the_test_fails(request):
    gen = _netns_fixture.__wrapped__()
    name = next(gen)
    assert name in namespaces()
    with pytest.raises(RuntimeError):
        try:
            raise RuntimeError("a failing test body")
        finally:
            gen.close()  # what pytest does with a fixture when the test has failed
    assert name not in namespaces()
