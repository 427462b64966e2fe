"""`nodeagent lab`: a real multi-node cluster on one machine, in the spirit of `kind`, but with
real kernel networking per node: every node is a network namespace on a shared underlay bridge,
running the same agent with the same configuration as on a real host; the control plane runs as
real processes in the underlay namespace; kubectl reaches it through a forwarder on loopback."""
