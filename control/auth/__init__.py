"""Security of the control plane: the cluster CA and certificates (pki), bootstrap and static
tokens, authentication of each request, and authorization by fixed roles."""
