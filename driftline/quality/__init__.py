"""Pure record-quality layer: reason codes, ok / invalid outcomes, row rules.

Imports nothing from Kafka, Spark or Great Expectations.
"""

from driftline.quality.outcome import Invalid, Valid
from driftline.quality.reasons import ReasonCode, Stage

__all__ = ["Invalid", "ReasonCode", "Stage", "Valid"]
