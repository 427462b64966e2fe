"""The nodeagent CNI plugin (bridge + veth + host-local style IPAM). Not written yet: see the
CNI plugin issue."""
