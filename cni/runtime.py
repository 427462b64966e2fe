"""A small CNI runtime: executes a network configuration list the way libcni does (SPEC.md
section 3), for the node agent's pod runtime, the tests and the benchmark.

- ADD runs the plugins in order, each given the previous one's result as `prevResult`; the final
  result is cached (like libcni's /var/lib/cni/results) for CHECK and DEL.
- DEL runs them in reverse, each given the cached ADD result; the cache entry goes after success.
- CHECK runs them in order with the cached result; GC and STATUS run every plugin.
- `runtimeConfig` holds the capability arguments that a plugin declares in `capabilities`
  (e.g. portMappings for portmap).

`wrapper` prefixes each plugin command, e.g. ["nsenter", "--net=/run/netns/node1"] to run the
plugins in a namespace playing a node's root namespace.
"""
from __future__ import annotations

import json
import os
import subprocess


class PluginError(Exception):
    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "", stderr: str = ""):
        super().__init__(f"{plugin} {command}: code {code}: {msg}" + (f" ({details})" if details else ""))
        self.plugin, self.command, self.code, self.msg, self.details, self.stderr = (
            plugin, command, code, msg, details, stderr)


class Runtime:
    def __init__(self, conflist: dict, cni_path: list[str], cache_dir: str,
                 wrapper: list[str] | None = None, extra_env: dict | None = None, timeout: float = 60):
        self.conf, self.cni_path, self.cache_dir = conflist, list(cni_path), cache_dir
        self.wrapper, self.extra_env, self.timeout = wrapper or [], extra_env or {}, timeout
        self.version = conflist.get("cniVersion", "0.1.0")
        self.name = conflist["name"]

    # -- plumbing --------------------------------------------------------------------------------
    def find(self, plugin_type: str) -> str:
        for d in self.cni_path:
            p = os.path.join(d, plugin_type)
            if os.access(p, os.X_OK):
                return p
        raise FileNotFoundError(f"CNI plugin {plugin_type!r} not found in {self.cni_path}")

    def exec_plugin(self, plugin: dict, command: str, conf: dict, cid="", netns="", ifname="",
                    args="") -> dict | None:
        env = {"CNI_COMMAND": command, "CNI_PATH": os.pathsep.join(self.cni_path),
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **self.extra_env}
        if command in ("ADD", "DEL", "CHECK"):
            env.update(CNI_CONTAINERID=cid, CNI_NETNS=netns, CNI_IFNAME=ifname, CNI_ARGS=args)
        p = subprocess.run(self.wrapper + [self.find(plugin["type"])], input=json.dumps(conf).encode(),
                           env=env, capture_output=True, timeout=self.timeout)
        out = p.stdout.decode().strip()
        if p.returncode != 0:
            try:
                e = json.loads(out)
                raise PluginError(plugin["type"], command, e.get("code", -1), e.get("msg", ""),
                                  e.get("details", ""), p.stderr.decode())
            except (ValueError, AttributeError):
                raise PluginError(plugin["type"], command, -1, out or "no output", "",
                                  p.stderr.decode()) from None
        return json.loads(out) if out else None

    def request(self, plugin: dict, prev: dict | None = None, capability_args: dict | None = None,
                extra: dict | None = None) -> dict:
        conf = {k: v for k, v in plugin.items() if k != "capabilities"}
        conf["cniVersion"], conf["name"] = self.version, self.name
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in (capability_args or {}).items() if caps.get(k)}
        if rc:
            conf["runtimeConfig"] = rc
        if prev is not None:
            conf["prevResult"] = prev
        conf.update(extra or {})
        return conf

    def _cache(self, cid, ifname) -> str:
        return os.path.join(self.cache_dir, f"{self.name}-{cid}-{ifname}")

    def cached(self, cid, ifname) -> dict | None:
        try:
            with open(self._cache(cid, ifname)) as f:
                return json.load(f)["result"]
        except FileNotFoundError:
            return None

    # -- operations ------------------------------------------------------------------------------
    def add(self, cid: str, netns: str, ifname: str = "eth0", args: str = "",
            capability_args: dict | None = None) -> dict:
        prev = None
        for plugin in self.conf["plugins"]:
            prev = self.exec_plugin(plugin, "ADD", self.request(plugin, prev, capability_args),
                                    cid, netns, ifname, args)
        os.makedirs(self.cache_dir, exist_ok=True)
        with open(self._cache(cid, ifname), "w") as f:
            json.dump({"result": prev, "capabilityArgs": capability_args or {}}, f)
        return prev

    def check(self, cid: str, netns: str, ifname: str = "eth0", args: str = ""):
        prev = self.cached(cid, ifname)
        for plugin in self.conf["plugins"]:
            self.exec_plugin(plugin, "CHECK", self.request(plugin, prev), cid, netns, ifname, args)

    def delete(self, cid: str, netns: str, ifname: str = "eth0", args: str = ""):
        try:
            with open(self._cache(cid, ifname)) as f:
                cache = json.load(f)
        except FileNotFoundError:
            cache = {"result": None, "capabilityArgs": {}}
        for plugin in reversed(self.conf["plugins"]):
            self.exec_plugin(plugin, "DEL", self.request(plugin, cache["result"], cache["capabilityArgs"]),
                             cid, netns, ifname, args)
        try:
            os.unlink(self._cache(cid, ifname))
        except FileNotFoundError:
            pass

    def gc(self, valid: list[tuple[str, str]]) -> list[PluginError]:
        errors = []
        attachments = [{"containerID": c, "ifname": i} for c, i in valid]
        for plugin in self.conf["plugins"]:
            try:
                self.exec_plugin(plugin, "GC", self.request(plugin, extra={"cni.dev/valid-attachments": attachments}))
            except PluginError as e:
                errors.append(e)  # GC goes on with the next plugin (spec)
        return errors

    def status(self):
        for plugin in self.conf["plugins"]:
            self.exec_plugin(plugin, "STATUS", self.request(plugin))
