"""What the proxier trace tests of both modes share: a proxier on its fake backend, the engine
in front of it and the mode's tracer behind it, on a clock the test moves."""
from nodeagent.proxy.engine import SyncEngine
from nodeagent.proxy.model import NodeConfig

NODE_IP = "192.168.50.2"
POD = "10.244.1.77"          # a pod on this node, not an endpoint
OUTSIDE = "203.0.113.9"      # a client outside the cluster
LOCAL_ADDRESSES = (NODE_IP, "127.0.0.1", "10.244.1.1")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Harness:
    """Subclasses say how to make the mode's fake, proxier and tracer. Pass another harness's
    cfg, fake and clock to play a restarted proxy on the same kernel."""

    def __init__(self, cfg=None, fake=None, clock=None):
        self.clock = clock or Clock()
        self.fake = fake or self.new_fake(self.clock)
        self.cfg = cfg or NodeConfig("node1", "10.244.0.0/16")
        self.proxier = self.new_proxier()
        self.engine = SyncEngine(self.proxier, self.cfg.node_name)
        self.tracer = self.new_tracer()

    def new_fake(self, clock):
        raise NotImplementedError

    def new_proxier(self):
        raise NotImplementedError

    def new_tracer(self):
        raise NotImplementedError

    def apply(self, *objs, etype="ADDED"):
        for o in objs:
            self.engine.event("service" if o["kind"] == "Service" else "slice", etype, o)
        return self.engine.sync().result

    def delete(self, *objs):
        return self.apply(*objs, etype="DELETED")

    def trace(self, src, dst, port, proto="tcp", **kw):
        return self.tracer.trace(src, dst, port, proto, **kw)


def eps(trace):
    return trace.endpoints
