"""Model registry watchers: a local folder, an MLflow Model Registry, and MLflow webhook parsing."""

from __future__ import annotations

from benchd.registry.base import CursorStore, MemoryCursorStore, RegistryWatcher, UnknownModelVersionError
from benchd.registry.local import LocalFolderWatcher
from benchd.registry.mlflow import MLflowWatcher
from benchd.registry.mlflow_http import MLflowAPIError, MLflowAuth
from benchd.registry.webhook import (
    ReplayGuard,
    WebhookAuthError,
    WebhookError,
    WebhookEvent,
    WebhookPayloadError,
    WebhookReplayError,
    WebhookStaleError,
    parse_mlflow_event,
    verify_mlflow_signature,
)

__all__ = [
    "CursorStore",
    "LocalFolderWatcher",
    "MLflowAPIError",
    "MLflowAuth",
    "MLflowWatcher",
    "MemoryCursorStore",
    "RegistryWatcher",
    "UnknownModelVersionError",
    "ReplayGuard",
    "WebhookAuthError",
    "WebhookError",
    "WebhookEvent",
    "WebhookPayloadError",
    "WebhookReplayError",
    "WebhookStaleError",
    "parse_mlflow_event",
    "verify_mlflow_signature",
]
