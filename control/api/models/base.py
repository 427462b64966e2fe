"""Pydantic models of the Kubernetes object shapes we serve.

They are the schema check of every body the API accepts: field names are the JSON names (camelCase)
so no aliasing is needed, `strict` rejects a string where Kubernetes wants an integer (Go's JSON
decoder would too), and `extra="allow"` keeps fields we do not model, so a newer client's objects
round-trip unchanged. Stored objects are the validated JSON itself, not a re-dump of the model.
"""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict

IntOrString = Union[int, str]
Quantity = Union[str, int, float]


class K8sModel(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class OwnerReference(K8sModel):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: Optional[bool] = None
    blockOwnerDeletion: Optional[bool] = None


class ManagedFieldsEntry(K8sModel):
    manager: Optional[str] = None
    operation: Optional[str] = None


class ObjectMeta(K8sModel):
    name: Optional[str] = None
    generateName: Optional[str] = None
    namespace: Optional[str] = None
    uid: Optional[str] = None
    resourceVersion: Optional[str] = None
    generation: Optional[int] = None
    creationTimestamp: Optional[str] = None
    deletionTimestamp: Optional[str] = None
    deletionGracePeriodSeconds: Optional[int] = None
    labels: Optional[dict[str, str]] = None
    annotations: Optional[dict[str, str]] = None
    ownerReferences: Optional[list[OwnerReference]] = None
    finalizers: Optional[list[str]] = None
    managedFields: Optional[list[ManagedFieldsEntry]] = None


class LabelSelectorRequirement(K8sModel):
    key: str
    operator: str
    values: Optional[list[str]] = None


class LabelSelector(K8sModel):
    matchLabels: Optional[dict[str, str]] = None
    matchExpressions: Optional[list[LabelSelectorRequirement]] = None


class TypedObject(K8sModel):
    apiVersion: Optional[str] = None
    kind: Optional[str] = None
    metadata: ObjectMeta = ObjectMeta()


class ObjectReference(K8sModel):
    kind: Optional[str] = None
    namespace: Optional[str] = None
    name: Optional[str] = None
    uid: Optional[str] = None
    apiVersion: Optional[str] = None
    resourceVersion: Optional[str] = None
    fieldPath: Optional[str] = None


class Condition(K8sModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: Optional[str] = None
    message: Optional[str] = None
    lastTransitionTime: Optional[str] = None
    lastProbeTime: Optional[str] = None
    lastHeartbeatTime: Optional[str] = None
    lastUpdateTime: Optional[str] = None
    observedGeneration: Optional[int] = None


class Preconditions(K8sModel):
    uid: Optional[str] = None
    resourceVersion: Optional[str] = None


class DeleteOptions(K8sModel):
    apiVersion: Optional[str] = None
    kind: Optional[str] = None
    gracePeriodSeconds: Optional[int] = None
    propagationPolicy: Optional[Literal["Orphan", "Background", "Foreground"]] = None
    orphanDependents: Optional[bool] = None
    preconditions: Optional[Preconditions] = None
    dryRun: Optional[list[str]] = None


