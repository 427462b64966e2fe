"""nodeagent: Kubernetes-style networking on your own Linux nodes."""
__version__ = "0.1.0"
