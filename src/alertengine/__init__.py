"""AlertEngine: human-authorized incident recovery for Python web APIs.

The data plane is one call::

    from alertengine import instrument
    instrument(app, service="checkout")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "instrument"]

if TYPE_CHECKING:  # typed for users and mypy; imported lazily at runtime (below)
    from alertengine.sdk import instrument as instrument


def __getattr__(name: str) -> Any:
    # Lazy so that `import alertengine` (e.g. for the CLI or the orchestrator) does not pay
    # for the SDK's imports, and the SDK does not pay for the orchestrator's.
    if name == "instrument":
        return importlib.import_module("alertengine.sdk").instrument
    raise AttributeError(f"module 'alertengine' has no attribute {name!r}")
