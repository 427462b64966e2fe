"""core/v1 shapes: Namespace, Node, Pod, Service, Endpoints, Binding."""
from __future__ import annotations

from typing import Any, Optional

from .base import (Condition, IntOrString, K8sModel, ObjectReference, Quantity,
                   TypedObject)


# -- pods ---------------------------------------------------------------------------------
class EnvVar(K8sModel):
    name: str
    value: Optional[str] = None
    valueFrom: Optional[dict[str, Any]] = None


class ContainerPort(K8sModel):
    containerPort: int
    name: Optional[str] = None
    protocol: Optional[str] = None
    hostPort: Optional[int] = None
    hostIP: Optional[str] = None


class ResourceRequirements(K8sModel):
    limits: Optional[dict[str, Quantity]] = None
    requests: Optional[dict[str, Quantity]] = None


class HTTPGetAction(K8sModel):
    port: IntOrString
    path: Optional[str] = None
    host: Optional[str] = None
    scheme: Optional[str] = None


class TCPSocketAction(K8sModel):
    port: IntOrString
    host: Optional[str] = None


class ExecAction(K8sModel):
    command: Optional[list[str]] = None


class Probe(K8sModel):
    httpGet: Optional[HTTPGetAction] = None
    tcpSocket: Optional[TCPSocketAction] = None
    exec: Optional[ExecAction] = None
    initialDelaySeconds: Optional[int] = None
    periodSeconds: Optional[int] = None
    timeoutSeconds: Optional[int] = None
    successThreshold: Optional[int] = None
    failureThreshold: Optional[int] = None


class Container(K8sModel):
    name: str
    image: Optional[str] = None
    command: Optional[list[str]] = None
    args: Optional[list[str]] = None
    workingDir: Optional[str] = None
    env: Optional[list[EnvVar]] = None
    ports: Optional[list[ContainerPort]] = None
    resources: Optional[ResourceRequirements] = None
    readinessProbe: Optional[Probe] = None
    livenessProbe: Optional[Probe] = None
    startupProbe: Optional[Probe] = None
    imagePullPolicy: Optional[str] = None


class Toleration(K8sModel):
    key: Optional[str] = None
    operator: Optional[str] = None
    value: Optional[str] = None
    effect: Optional[str] = None
    tolerationSeconds: Optional[int] = None


class PodSpec(K8sModel):
    containers: list[Container]
    initContainers: Optional[list[Container]] = None
    restartPolicy: Optional[str] = None
    terminationGracePeriodSeconds: Optional[int] = None
    activeDeadlineSeconds: Optional[int] = None
    nodeName: Optional[str] = None
    nodeSelector: Optional[dict[str, str]] = None
    schedulerName: Optional[str] = None
    hostNetwork: Optional[bool] = None
    tolerations: Optional[list[Toleration]] = None
    affinity: Optional[dict[str, Any]] = None
    priority: Optional[int] = None


class ContainerStatus(K8sModel):
    name: str
    ready: bool
    restartCount: int
    image: Optional[str] = None
    imageID: Optional[str] = None
    state: Optional[dict[str, Any]] = None
    lastState: Optional[dict[str, Any]] = None
    started: Optional[bool] = None
    containerID: Optional[str] = None


class PodIP(K8sModel):
    ip: str


class PodStatus(K8sModel):
    phase: Optional[str] = None
    conditions: Optional[list[Condition]] = None
    message: Optional[str] = None
    reason: Optional[str] = None
    hostIP: Optional[str] = None
    podIP: Optional[str] = None
    podIPs: Optional[list[PodIP]] = None
    startTime: Optional[str] = None
    containerStatuses: Optional[list[ContainerStatus]] = None
    qosClass: Optional[str] = None


class Pod(TypedObject):
    spec: PodSpec
    status: Optional[PodStatus] = None


class PodTemplateSpec(K8sModel):
    metadata: Optional[dict[str, Any]] = None
    spec: PodSpec


class Binding(TypedObject):
    target: ObjectReference


# -- services -----------------------------------------------------------------------------
class ServicePort(K8sModel):
    port: int
    name: Optional[str] = None
    protocol: Optional[str] = None
    targetPort: Optional[IntOrString] = None
    nodePort: Optional[int] = None
    appProtocol: Optional[str] = None


class SessionAffinityConfig(K8sModel):
    clientIP: Optional[dict[str, Any]] = None


class ServiceSpec(K8sModel):
    type: Optional[str] = None
    selector: Optional[dict[str, str]] = None
    ports: Optional[list[ServicePort]] = None
    clusterIP: Optional[str] = None
    clusterIPs: Optional[list[str]] = None
    externalIPs: Optional[list[str]] = None
    externalName: Optional[str] = None
    sessionAffinity: Optional[str] = None
    sessionAffinityConfig: Optional[SessionAffinityConfig] = None
    externalTrafficPolicy: Optional[str] = None
    internalTrafficPolicy: Optional[str] = None
    healthCheckNodePort: Optional[int] = None
    publishNotReadyAddresses: Optional[bool] = None
    loadBalancerIP: Optional[str] = None
    ipFamilies: Optional[list[str]] = None
    ipFamilyPolicy: Optional[str] = None
    allocateLoadBalancerNodePorts: Optional[bool] = None


class LoadBalancerIngress(K8sModel):
    ip: Optional[str] = None
    hostname: Optional[str] = None


class LoadBalancerStatus(K8sModel):
    ingress: Optional[list[LoadBalancerIngress]] = None


class ServiceStatus(K8sModel):
    loadBalancer: Optional[LoadBalancerStatus] = None
    conditions: Optional[list[Condition]] = None


class Service(TypedObject):
    spec: ServiceSpec = ServiceSpec()
    status: Optional[ServiceStatus] = None


# -- endpoints ----------------------------------------------------------------------------
class EndpointAddress(K8sModel):
    ip: str
    hostname: Optional[str] = None
    nodeName: Optional[str] = None
    targetRef: Optional[ObjectReference] = None


class EndpointPort(K8sModel):
    port: int
    name: Optional[str] = None
    protocol: Optional[str] = None
    appProtocol: Optional[str] = None


class EndpointSubset(K8sModel):
    addresses: Optional[list[EndpointAddress]] = None
    notReadyAddresses: Optional[list[EndpointAddress]] = None
    ports: Optional[list[EndpointPort]] = None


class Endpoints(TypedObject):
    subsets: Optional[list[EndpointSubset]] = None


# -- nodes and namespaces -----------------------------------------------------------------
class Taint(K8sModel):
    key: str
    effect: str
    value: Optional[str] = None
    timeAdded: Optional[str] = None


class NodeSpec(K8sModel):
    podCIDR: Optional[str] = None
    podCIDRs: Optional[list[str]] = None
    unschedulable: Optional[bool] = None
    taints: Optional[list[Taint]] = None
    providerID: Optional[str] = None


class NodeAddress(K8sModel):
    type: str
    address: str


class NodeStatus(K8sModel):
    capacity: Optional[dict[str, Quantity]] = None
    allocatable: Optional[dict[str, Quantity]] = None
    conditions: Optional[list[Condition]] = None
    addresses: Optional[list[NodeAddress]] = None
    nodeInfo: Optional[dict[str, Any]] = None
    phase: Optional[str] = None


class Node(TypedObject):
    spec: NodeSpec = NodeSpec()
    status: Optional[NodeStatus] = None


class NamespaceSpec(K8sModel):
    finalizers: Optional[list[str]] = None


class NamespaceStatus(K8sModel):
    phase: Optional[str] = None


class Namespace(TypedObject):
    spec: Optional[NamespaceSpec] = None
    status: Optional[NamespaceStatus] = None


