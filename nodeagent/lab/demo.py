"""`nodeagent lab demo`: deploy the bookinfo example on a lab and show traffic through the
services' ClusterIPs (from a client pod inside the cluster) and a NodePort (from the client
namespace outside it), with the pod and node that answered each request."""
from __future__ import annotations

import asyncio
import collections
import json
import os
import subprocess
import sys
import time

import yaml

from control.client import ApiClient, ApiStatusError

from . import topology as T

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "bookinfo.yaml")
PLURALS = {"Namespace": ("v1", "namespaces"), "Deployment": ("apps/v1", "deployments"), "Service": ("v1", "services"),
           "Pod": ("v1", "pods")}


def say(text: str) -> None:
    print(text, flush=True)


async def apply(client: ApiClient, docs: list[dict]) -> None:
    for d in docs:
        api, plural = PLURALS[d["kind"]]
        ns = d["metadata"].get("namespace", "") if d["kind"] != "Namespace" else ""
        try:
            await client.create(api, plural, ns, d)
            say(f"  {d['kind'].lower()}/{d['metadata']['name']} created")
        except ApiStatusError as err:
            if err.code != 409:
                raise
            say(f"  {d['kind'].lower()}/{d['metadata']['name']} exists")


async def wait_rollout(client: ApiClient, ns: str, names: list[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        parts = []
        done = True
        for n in names:
            d = await client.get("apps/v1", "deployments", ns, n)
            ready, want = (d.get("status") or {}).get("readyReplicas", 0), d["spec"]["replicas"]
            parts.append(f"{n} {ready}/{want}")
            done = done and ready == want
        line = "  ready: " + ", ".join(parts)
        if line != last:
            say(line)
            last = line
        if done:
            return
        if time.monotonic() > deadline:
            raise T.LabError("the deployments did not become ready in time")
        await asyncio.sleep(0.5)


def http_from(netns: str, url: str) -> dict | str:
    code = ("import json,sys,urllib.request\n"
            "try: print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n"
            "except Exception as e: print(json.dumps({'error': str(e)}))\n")
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", code, url],
                         capture_output=True, text=True, timeout=20).stdout.strip()
    try:
        return json.loads(out)
    except ValueError:
        return out


def show(label: str, netns: str, url: str, count: int) -> None:
    say(f"\n{label}: {count} requests to {url}")
    spread: collections.Counter = collections.Counter()
    for i in range(count):
        r = http_from(netns, url)
        if isinstance(r, dict) and "pod" in r:
            spread[(r["pod"], r["node"])] += 1
            say(f"  {i + 1:2}. answered by pod {r['pod']:28} on node {r['node']:3}  "
                f"client seen as {r['client']:20} {r['status']!r}")
        else:
            say(f"  {i + 1:2}. FAILED: {r}")
    say(f"  spread: {len(spread)} replicas answered: " + ", ".join(f"{p}@{n} x{c}" for (p, n), c in sorted(spread.items())))


async def demo(kubeconfig: str, lab: str, requests: int) -> int:
    client = ApiClient.from_kubeconfig(kubeconfig)
    try:
        with open(EXAMPLE) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        say(f"deploying {os.path.relpath(EXAMPLE, ROOT)}: two services, three replicas each")
        await apply(client, docs)
        client_pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "bookinfo"},
                      "spec": {"containers": [{"name": "client", "image": "nodeagent/netexec"}]}}
        await apply(client, [client_pod])
        say("waiting for the scheduler, the agents and the probes:")
        await wait_rollout(client, "bookinfo", ["details", "ratings"])
        while True:
            pod = await client.get("v1", "pods", "bookinfo", "client")
            if (pod.get("status") or {}).get("phase") == "Running" and pod["spec"].get("nodeName"):
                break
            await asyncio.sleep(0.3)
        node_of_client = pod["spec"]["nodeName"]
        client_ns = f"{T.ns_name(lab, node_of_client)}-{pod['metadata']['uid']}"
        details = await client.get("v1", "services", "bookinfo", "details")
        ratings = await client.get("v1", "services", "bookinfo", "ratings")
        slices = await client.list("discovery.k8s.io/v1", "endpointslices", "bookinfo")
        for s in slices["items"]:
            svc = s["metadata"]["labels"].get("kubernetes.io/service-name")
            eps = [f"{e['addresses'][0]}@{e.get('nodeName')}" for e in s.get("endpoints") or []]
            say(f"  endpoints of {svc}: {' '.join(eps)}")
        nodes = (await client.list("v1", "nodes"))["items"]
        node_ip = next(a["address"] for a in nodes[0]["status"]["addresses"] if a["type"] == "InternalIP")
    finally:
        await client.close()
    cip = details["spec"]["clusterIP"]
    show(f"ClusterIP of details, from the client pod on {node_of_client}", client_ns, f"http://{cip}:9080/", requests)
    rip = ratings["spec"]["clusterIP"]
    show("ClusterIP of ratings, from the same pod", client_ns, f"http://{rip}:9080/", requests)
    np = ratings["spec"]["ports"][0]["nodePort"]
    show(f"NodePort {np} of ratings on node {nodes[0]['metadata']['name']}, from the client namespace outside the cluster",
         T.ns_name(lab, "client"), f"http://{node_ip}:{np}/", requests)
    say(f"\nhealth: {http_from(T.ns_name(lab, 'client'), f'http://{node_ip}:{np}/health')}")
    return 0


def run(kubeconfig: str, lab: str, requests: int = 6) -> int:
    return asyncio.run(demo(kubeconfig, lab, requests))
