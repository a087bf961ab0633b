"""The one exception root and its leaves.

Raise these for configuration and programming errors only; a bad *record* is never
an exception but an :class:`driftline.quality.outcome.Invalid` value.
Each leaf also subclasses the matching builtin so callers that catch ``ValueError``
or ``OSError`` keep working.
"""

from __future__ import annotations


class DriftlineError(Exception):
    """Root of every error driftline raises on purpose."""


class ConfigError(DriftlineError, ValueError):
    """A pipeline definition, option or argument is wrong.

    The message names the field, what was expected and the valid options.
    """


class SchemaError(DriftlineError, ValueError):
    """An Avro schema is unreadable, missing, or incompatible with its predecessor."""


class BrokerError(DriftlineError, OSError):
    """The Kafka broker cannot be started, reached or stopped."""


class DeliveryError(DriftlineError, OSError):
    """Records could not be delivered to Kafka after the producer's retries."""


class JobError(DriftlineError, RuntimeError):
    """A streaming query of the quality job failed."""


class DataLossError(JobError):
    """Records the job had not read yet are gone from Kafka (``failOnDataLoss``)."""


class QueryError(DriftlineError, ValueError):
    """A ``driftline sql`` query does not parse, or names a table or column that is not there."""
