"""`nodeagent agent`: the root daemon on every node (kubelet's, flannel's and kube-proxy's jobs)."""
