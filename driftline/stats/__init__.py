"""Pure drift statistics: numpy and scipy only, no Spark, Kafka or Great Expectations.

- :mod:`~driftline.stats.binning`: bins frozen on the reference (quantile grid, vocabulary)
- :mod:`~driftline.stats.accumulators`: mergeable bin counts and moments
- :mod:`~driftline.stats.methods`: PSI, KS, chi-square, JS over counts, and their registry
- :mod:`~driftline.stats.multiple_testing`: Benjamini-Hochberg
- :mod:`~driftline.stats.policy`: the alert policy (floors, persistence, hysteresis)
- :mod:`~driftline.stats.scoring`: one window of counts -> scores and verdicts
- :mod:`~driftline.stats.profile`: :class:`ReferenceProfile` (fit / save / load / compare)
"""

from driftline.stats.accumulators import BinCounts, Moments
from driftline.stats.binning import CategoricalBinning, NumericBinning
from driftline.stats.methods import METHODS, Measure, drift_method
from driftline.stats.multiple_testing import benjamini_hochberg
from driftline.stats.policy import AlertPolicy, AlertTrack, PolicyState, Verdict
from driftline.stats.profile import FeatureProfile, ReferenceProfile
from driftline.stats.scoring import FeatureScore, score_window

__all__ = [
    "METHODS",
    "AlertPolicy",
    "AlertTrack",
    "BinCounts",
    "CategoricalBinning",
    "FeatureProfile",
    "FeatureScore",
    "Measure",
    "Moments",
    "NumericBinning",
    "PolicyState",
    "ReferenceProfile",
    "Verdict",
    "benjamini_hochberg",
    "drift_method",
    "score_window",
]
