"""The overlay: a flannel-like VXLAN network between nodes.

Design (after flannel's pkg/backend/vxlan/vxlan.go): one VXLAN device per node, learning off, and
for each other node exactly three kernel entries, all permanent and all known in advance from the
Node objects, so no miss daemon answers ARP or FDB misses at run time:

  neighbour  <remote podCIDR network address> lladdr <remote VTEP MAC>  dev <vxlan>
  fdb        <remote VTEP MAC> dst <remote underlay IP>                   dev <vxlan>
  route      <remote podCIDR> via <remote podCIDR network address> dev <vxlan> onlink

Added in that order (a route first would make the kernel ARP for its gateway) and removed in the
reverse order; a failed step undoes the earlier ones. With direct routing, a node on the same L2
network as ours gets a plain route via its underlay address instead.

plan.py computes the desired entries from the node list (pure); apply.py compares them with what
the kernel holds and changes only the difference; netlink.py is the real kernel (pyroute2) and
fake.py a state-based fake with the same interface for fast tests.
"""
