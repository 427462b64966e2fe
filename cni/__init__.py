"""The nodeagent CNI plugin: bridge + veth + host-local compatible IPAM, per CNI 0.1.0 - 1.1.0.

Modules (the first six are the plugin's hot path and import only C modules of the standard
library, because every pod start executes the plugin; see docs/cni.md for the measurements):

    main      what the installed executable runs: daemon socket if one listens, else standalone
    plugin    run(env, stdin) -> (code, stdout): ADD/DEL/CHECK/STATUS/GC/VERSION, rollback
    spec      versions, error codes, CNI_* environment, result rendering per version
    config    the network configuration, validated before any change
    ipam      host-local's on-disk layout (file per address, flock), round-robin allocator
    kernel    the kernel verbs the plugin uses (netlink.py + netns.py); fake.py fakes them
    jsonio    JSON through the `_json` C module (the json package imports `re`: ~12 ms)
    daemon    optional resident server on a unix socket (python -m cni.daemon)
    install   python -m cni.install: the executable and a conflist
    runtime   a small libcni-like runtime (conflists, prevResult chaining, result cache)
"""
