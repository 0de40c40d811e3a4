"""Model backends: one async streaming protocol (base.py), built from spaces.yaml by type."""

from .base import (ERROR, LENGTH, STOP, STOPPED, Backend, BackendError, Delta,
                   GenerationParams)
from .registry import BACKEND_TYPES, create_backend
from .spec import ModelSpec

__all__ = ["Backend", "BackendError", "Delta", "GenerationParams", "ModelSpec",
           "create_backend", "BACKEND_TYPES", "STOP", "LENGTH", "STOPPED", "ERROR"]
