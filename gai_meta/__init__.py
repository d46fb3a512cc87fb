"""gai-meta: introspect PyTorch models and experiments and write their metadata as JSON.

Importing this package does not import torch; the functions below import it when called.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
