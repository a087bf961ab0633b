"""driftline: streaming data-quality and drift detection.

The package is layered (see docs/architecture.md): ``driftline.stats`` and ``driftline.quality``
are pure; ``driftline.kafka`` and ``driftline.spark`` are the edges; ``driftline.cli``
sits on top. Importing ``driftline`` itself loads none of the heavy dependencies.
"""

from driftline.errors import (
    BrokerError,
    ConfigError,
    DeliveryError,
    DriftlineError,
    SchemaError,
)

__version__ = "0.1.0"

__all__ = [
    "BrokerError",
    "ConfigError",
    "DeliveryError",
    "DriftlineError",
    "SchemaError",
    "__version__",
]
