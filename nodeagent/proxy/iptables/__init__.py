"""The iptables mode of the service proxy (kube-proxy's iptables mode is the reference).

Same tracker, view and engine as the nftables mode; only the proxier differs:

* `render.py`  pure: service ports in, `iptables-restore` text of our own chains out;
* `proxier.py` one `iptables-restore --noflush` per sync (one commit per table), jump rules
               from the built-in chains ensured on full syncs, stale chains deleted;
* `backend.py` the binaries (legacy by default, nft on request), run in a namespace if asked,
               and the check that warns when the host's other rules live in the other backend;
* `fake.py`, `tracer.py` a restore-text fake and a packet tracer for tier-2 tests.

docs/proxy.md ("iptables mode") has the layout and the measurements behind the choices.
"""
