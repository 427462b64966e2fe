"""apps/v1 shapes (Deployment, ReplicaSet), autoscaling/v1 Scale, discovery.k8s.io/v1
EndpointSlice and coordination.k8s.io/v1 Lease."""
from __future__ import annotations

from typing import Optional

from .base import Condition, IntOrString, K8sModel, LabelSelector, ObjectReference, TypedObject
from .core import PodTemplateSpec


class RollingUpdateDeployment(K8sModel):
    maxSurge: Optional[IntOrString] = None
    maxUnavailable: Optional[IntOrString] = None


class DeploymentStrategy(K8sModel):
    type: Optional[str] = None
    rollingUpdate: Optional[RollingUpdateDeployment] = None


class DeploymentSpec(K8sModel):
    selector: LabelSelector
    template: PodTemplateSpec
    replicas: Optional[int] = None
    strategy: Optional[DeploymentStrategy] = None
    minReadySeconds: Optional[int] = None
    revisionHistoryLimit: Optional[int] = None
    progressDeadlineSeconds: Optional[int] = None
    paused: Optional[bool] = None


class DeploymentStatus(K8sModel):
    observedGeneration: Optional[int] = None
    replicas: Optional[int] = None
    updatedReplicas: Optional[int] = None
    readyReplicas: Optional[int] = None
    availableReplicas: Optional[int] = None
    unavailableReplicas: Optional[int] = None
    conditions: Optional[list[Condition]] = None
    collisionCount: Optional[int] = None


class Deployment(TypedObject):
    spec: DeploymentSpec
    status: Optional[DeploymentStatus] = None


class ReplicaSetSpec(K8sModel):
    selector: LabelSelector
    template: Optional[PodTemplateSpec] = None
    replicas: Optional[int] = None
    minReadySeconds: Optional[int] = None


class ReplicaSetStatus(K8sModel):
    replicas: int = 0
    fullyLabeledReplicas: Optional[int] = None
    readyReplicas: Optional[int] = None
    availableReplicas: Optional[int] = None
    observedGeneration: Optional[int] = None
    conditions: Optional[list[Condition]] = None


class ReplicaSet(TypedObject):
    spec: ReplicaSetSpec
    status: Optional[ReplicaSetStatus] = None


class ScaleSpec(K8sModel):
    replicas: Optional[int] = None


class Scale(TypedObject):
    spec: ScaleSpec = ScaleSpec()


class EndpointConditions(K8sModel):
    ready: Optional[bool] = None
    serving: Optional[bool] = None
    terminating: Optional[bool] = None


class Endpoint(K8sModel):
    addresses: list[str]
    conditions: Optional[EndpointConditions] = None
    hostname: Optional[str] = None
    nodeName: Optional[str] = None
    zone: Optional[str] = None
    targetRef: Optional[ObjectReference] = None


class EndpointSlicePort(K8sModel):
    name: Optional[str] = None
    protocol: Optional[str] = None
    port: Optional[int] = None
    appProtocol: Optional[str] = None


class EndpointSlice(TypedObject):
    addressType: str
    endpoints: Optional[list[Endpoint]] = None
    ports: Optional[list[EndpointSlicePort]] = None


class LeaseSpec(K8sModel):
    holderIdentity: Optional[str] = None
    leaseDurationSeconds: Optional[int] = None
    acquireTime: Optional[str] = None
    renewTime: Optional[str] = None
    leaseTransitions: Optional[int] = None


class Lease(TypedObject):
    spec: LeaseSpec = LeaseSpec()
