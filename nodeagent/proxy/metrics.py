"""Prometheus text exposition for the proxy (no client library: a few counters, gauges and
histograms). Metric names follow kube-proxy's, so its dashboards and alerts apply."""
from __future__ import annotations

import threading

# kube-proxy's buckets for sync durations (1 ms .. ~16 s, exponential)
DURATION_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))
# network programming latency: 0.25 s .. 5 min in kube-proxy; we also want the fast end
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 30, 45, 60,
                   120, 180, 240, 300)


def _fmt(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v)) if abs(v) < 1e15 else repr(float(v))


def _labels(labels: dict) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{str(v)}"' for k, v in sorted(labels.items())) + "}"


class Metric:
    kind = ""

    def __init__(self, name: str, help: str):
        self.name, self.help = name, help
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(Metric):
    kind = "counter"

    def __init__(self, name, help):
        super().__init__(name, help)
        self.values: dict[tuple, float] = {}

    def inc(self, n: float = 1, **labels) -> None:
        k = tuple(sorted(labels.items()))
        with self._lock:
            self.values[k] = self.values.get(k, 0) + n

    def get(self, **labels) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0)

    def render(self) -> list[str]:
        out = self.header()
        for k, v in sorted(self.values.items()) or [((), 0)]:
            out.append(f"{self.name}{_labels(dict(k))} {_fmt(v)}")
        return out


class Gauge(Counter):
    kind = "gauge"

    def set(self, v: float, **labels) -> None:
        with self._lock:
            self.values[tuple(sorted(labels.items()))] = v


class Histogram(Metric):
    kind = "histogram"

    def __init__(self, name, help, buckets=DURATION_BUCKETS):
        super().__init__(name, help)
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        with self._lock:
            self.sum += v
            self.count += 1
            for i, b in enumerate(self.buckets):
                if v <= b:
                    self.counts[i] += 1

    def render(self) -> list[str]:
        out = self.header()
        for b, c in zip(self.buckets, self.counts):
            out.append(f'{self.name}_bucket{{le="{_fmt(b)}"}} {c}')
        out.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{self.name}_sum {_fmt(self.sum)}")
        out.append(f"{self.name}_count {self.count}")
        return out


class ProxyMetrics:
    def __init__(self, mode: str = "nftables"):
        self.mode = mode
        self.sync_duration = Histogram("kubeproxy_sync_proxy_rules_duration_seconds",
                                       "SyncProxyRules latency in seconds")
        self.full_sync_duration = Histogram("kubeproxy_sync_full_proxy_rules_duration_seconds",
                                            "SyncProxyRules latency in seconds for full resyncs")
        self.partial_sync_duration = Histogram("kubeproxy_sync_partial_proxy_rules_duration_seconds",
                                               "SyncProxyRules latency in seconds for partial resyncs")
        self.programming_latency = Histogram("kubeproxy_network_programming_duration_seconds",
                                             "In Cluster Network Programming Latency in seconds", LATENCY_BUCKETS)
        self.last_sync = Gauge("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                               "The last time proxy rules were successfully synced")
        self.failures = Counter(f"kubeproxy_sync_proxy_rules_{'nftables_sync' if mode == 'nftables' else 'iptables_restore'}_failures_total",
                                "Cumulative proxy rules sync failures")
        self.rules = Gauge("nodeagent_proxy_rules_total",
                           "Rules, chains and map elements the proxy has in the kernel, by kind")
        self.elements_sent = Counter("nodeagent_proxy_sync_operations_total",
                                     "Element (or rule) additions and deletions sent to the kernel, by sync kind")
        self.service_changes = Counter("kubeproxy_sync_proxy_rules_service_changes_total",
                                       "Cumulative service changes")
        self.endpoint_changes = Counter("kubeproxy_sync_proxy_rules_endpoint_changes_total",
                                        "Cumulative endpoint slice changes")

    def all(self) -> list[Metric]:
        return [self.sync_duration, self.full_sync_duration, self.partial_sync_duration, self.programming_latency,
                self.last_sync, self.failures, self.rules, self.elements_sent, self.service_changes,
                self.endpoint_changes]

    def render(self) -> str:
        return "\n".join(line for m in self.all() for line in m.render()) + "\n"
