"""The scheduler: binds pods whose spec.nodeName is empty to a node.

Layout (a small version of kube-scheduler's framework):

- ``nodeinfo``: quantities, ``PodInfo`` (what scheduling needs of a pod, computed once per pod
  object) and ``NodeInfo`` (a node plus the sums of what its pods request).
- ``filters`` and ``scores``: pure functions over ``PodInfo`` / ``NodeInfo``; no I/O, no state.
- ``cache``: the scheduler's view of the cluster, with assumed pods.
- ``queue``: the scheduling queue (active, backoff, unschedulable).
- ``scheduler``: the loop that wires informers, queue, cache, filters, scores and binding.
- ``command``: ``nodeagent scheduler``.
"""
