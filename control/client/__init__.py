"""The asyncio client every component uses to talk to the API server: plain requests, and
informers (list + watch with resourceVersion resume) that keep a local cache."""
from .client import ApiClient, ApiStatusError, api_path
from .informer import Informer

__all__ = ["ApiClient", "ApiStatusError", "Informer", "api_path"]
