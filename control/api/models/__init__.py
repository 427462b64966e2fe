from .apps import Deployment, EndpointSlice, Lease, ReplicaSet, Scale
from .base import DeleteOptions, ObjectMeta
from .core import Binding, Endpoints, Namespace, Node, Pod, Service

__all__ = ["Binding", "DeleteOptions", "Deployment", "EndpointSlice", "Endpoints", "Lease",
           "Namespace", "Node", "ObjectMeta", "Pod", "ReplicaSet", "Scale", "Service"]
