"""A request loop, run inside a namespace: GET a URL every interval for a while and print a JSON
summary (requests, failures, which pods answered). Standard library only: it starts fast.
A request fails on an error or after 10 s without an answer: on this shared 2-core machine a
starved server can be slow to answer, and slowness is not what these loops test."""
import json
import sys
import time
import urllib.request

url, seconds, interval = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
done, failed, pods, errors = 0, 0, {}, []
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        pods[body.get("pod", "?")] = pods.get(body.get("pod", "?"), 0) + 1
    except Exception as e:  # noqa: BLE001 - every failure counts
        failed += 1
        errors.append(f"{time.strftime('%H:%M:%S')} {e}")
    done += 1
    time.sleep(interval)
print(json.dumps({"requests": done, "failed": failed, "pods": pods, "errors": errors[:10]}))
