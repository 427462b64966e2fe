"""A real CNI runtime drives the plugin: podman 4.3 with its CNI backend, run under nsenter in a
throwaway namespace playing the node, with a private containers.conf, storage and config dir.

podman sends what it sends to the reference plugins: VERSION probes, ADD with CNI_ARGS and
runtimeConfig.portMappings for the chained portmap, DEL with the cached prevResult. Needs the
Debian packages podman and busybox-static (skipped without them).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from cni import install
from tests.conftest import unique

BUSYBOX = "/bin/busybox"
pytestmark = pytest.mark.skipif(not shutil.which("podman") or not os.path.exists(BUSYBOX),
                                reason="needs the podman and busybox-static packages")


def busybox_is_static():
    out = subprocess.run(["ldd", BUSYBOX], capture_output=True, text=True)
    return out.returncode != 0 or "not a dynamic" in out.stdout + out.stderr


@pytest.fixture
def podman(netns, tmp_path):
    if not busybox_is_static():
        pytest.skip("needs a static busybox (busybox-static)")
    # podman writes libcni's result cache to /var/lib/cni and a blob cache to /var/lib/containers
    # whatever --root says; remove them afterwards unless they were there before
    existed = {d: os.path.exists(d) for d in ("/var/lib/cni", "/var/lib/containers")}
    net = unique("pmn")
    conf_dir, ipam = tmp_path / "net.d", tmp_path / "ipam"
    bindir = tmp_path / "bin"
    install.write_executable(str(bindir), "nodeagent", socket="")
    install.write_conflist(str(conf_dir), install.conflist(
        net, subnet="10.68.0.0/24", bridge=unique("nab"), data_dir=str(ipam), portmap=True))
    (tmp_path / "containers.conf").write_text(f"""
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["{bindir}", "/usr/lib/cni"]
network_config_dir = "{conf_dir}"
default_network = "{net}"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
""")
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    (rootfs / "www").mkdir()
    (rootfs / "www" / "index.html").write_text("hello from podman\n")
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for tool in ("sh", "ip", "httpd", "sleep"):
        os.symlink("busybox", rootfs / "bin" / tool)
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp_path / "rootfs.tar"), "."], check=True)
    env = dict(os.environ, CONTAINERS_CONF=str(tmp_path / "containers.conf"))
    short = tempfile.mkdtemp(prefix="nap", dir="/tmp")  # podman wants a runroot under 50 characters
    base = ["nsenter", f"--net=/run/netns/{netns}", "podman", "--root", f"{short}/r",
            "--runroot", f"{short}/rr", "--storage-driver", "vfs", "--tmpdir", f"{short}/t"]

    def run(*args, check=True, timeout=120):
        p = subprocess.run(base + list(args), env=env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {p.stdout} {p.stderr}")
        return p
    run.net, run.ipam, run.ns = net, ipam, netns
    try:
        run("import", str(tmp_path / "rootfs.tar"), "localhost/nabox")
        yield run
    finally:
        run("rm", "--all", "--force", "--time", "0", check=False)
        run("system", "reset", "--force", check=False)  # unmounts and removes podman's storage
        shutil.rmtree(short, ignore_errors=True)
        for d, was_there in existed.items():
            if not was_there:
                shutil.rmtree(d, ignore_errors=True)


def ip_files(run):
    d = run.ipam / run.net
    return sorted(f for f in os.listdir(d) if f[0].isdigit()) if d.exists() else []


def test_podman_run_gets_an_address_and_releases_it(podman):
    out = podman("run", "--rm", "--network", podman.net, "localhost/nabox", "/bin/ip", "-4", "addr", "show", "eth0").stdout
    assert "inet 10.68.0." in out, out
    assert ip_files(podman) == []  # --rm: podman called DEL with the cached result


def test_podman_port_mapping_through_chained_portmap(podman):
    podman("run", "-d", "--name", "web", "--network", podman.net, "-p", "18090:8080", "localhost/nabox",
           "/bin/httpd", "-f", "-p", "8080", "-h", "/www")
    try:
        assert len(ip_files(podman)) == 1
        got = ""
        deadline = time.monotonic() + 30   # the container's httpd starts on its own time
        while time.monotonic() < deadline:
            r = subprocess.run(["ip", "netns", "exec", podman.ns, sys.executable, "-c",
                                "import socket; s=socket.create_connection(('10.68.0.1', 18090), 1);"
                                "s.sendall(b'GET /index.html HTTP/1.0\\r\\n\\r\\n'); print(s.recv(1000).decode())"],
                               capture_output=True, text=True, timeout=30)
            if "hello from podman" in r.stdout:
                got = r.stdout
                break
            time.sleep(0.1)
        assert "hello from podman" in got, (r.stdout, r.stderr)
        inspect = json.loads(podman("inspect", "web").stdout)[0]
        assert inspect["NetworkSettings"]["Networks"][podman.net]["IPAddress"].startswith("10.68.0.")
    finally:
        podman("rm", "--force", "--time", "0", "web")
    assert ip_files(podman) == []
