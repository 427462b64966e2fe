"""The controllers (`nodeagent controller-manager`): each turns desired state into writes
through the API server's HTTP API.

- ``manager``: shared informers feeding one write-through cache per resource, and the loop
  that runs the controllers (under leader election, in ``command``).
- ``workqueue``: keys to sync, de-duplicated, with per-key exponential backoff.
- one module per controller: ``endpointslice``, ``endpoints``, ``replicaset``, ``deployment``,
  ``nodeipam``, ``nodelifecycle``, ``gc``; their decisions are pure functions with unit tests.
"""
