"""A small pod runtime: for every pod bound to this node, a network namespace, the CNI plugins
called per spec (through the conflist, as any runtime would), the containers' commands run inside
the namespace, probes, restarts with backoff, status written back, and graceful deletion.

Images are not pulled: a container's command runs from the node's own filesystem, and a few
built-in image names map to our own programs (images.py). State kept per pod on disk lets a
restarted agent adopt running pods instead of restarting them."""
