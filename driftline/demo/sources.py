"""Realistic field models for the three demo sources.

Each numeric field knows its own mean and standard deviation, so drift can be injected
in units that mean the same thing for every feature (a shift of ``1.0`` moves the mean
by one standard deviation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Sampler = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class NumericField:
    name: str
    sample: Sampler
    mean: float
    std: float
    integer: bool = False
    null_rate: float = 0.0
    decimals: int | None = None


@dataclass(frozen=True)
class CategoricalField:
    name: str
    categories: tuple[str, ...]
    weights: tuple[float, ...]
    null_rate: float = 0.0


@dataclass(frozen=True)
class IdField:
    name: str
    prefix: str
    population: int  # distinct entities, drawn with a Zipf-like skew; 0 = unique per record
    null_rate: float = 0.0


@dataclass(frozen=True)
class BoolField:
    name: str
    p_true: float


@dataclass(frozen=True)
class SourceModel:
    """The fields of one source, in schema order; ``event_time`` is added by the generator."""

    name: str
    subject: str
    fields: tuple[NumericField | CategoricalField | IdField | BoolField, ...]
    missing_target: str  # required numeric field removed by the ``missing_field`` corruption
    wrong_type_target: str  # numeric field given text by ``wrong_type``
    range_target: str  # Avro int field pushed past 2**31 by ``out_of_range``

    def field(self, name: str):
        for spec in self.fields:
            if spec.name == name:
                return spec
        valid = ", ".join(f.name for f in self.fields)
        raise KeyError(f"source {self.name!r} has no field {name!r}; fields: {valid}")


def _lognormal(mu: float, sigma: float) -> tuple[Sampler, float, float]:
    mean = float(np.exp(mu + sigma**2 / 2))
    std = float(np.sqrt((np.exp(sigma**2) - 1) * np.exp(2 * mu + sigma**2)))
    return (lambda rng, n: rng.lognormal(mu, sigma, n)), mean, std


def _normal(mu: float, sigma: float) -> tuple[Sampler, float, float]:
    return (lambda rng, n: rng.normal(mu, sigma, n)), mu, sigma


_amount, _amount_mean, _amount_std = _lognormal(3.4, 0.8)
_dwell, _dwell_mean, _dwell_std = _lognormal(9.4, 0.7)

PAYMENTS = SourceModel(
    name="payments",
    subject="payments",
    fields=(
        IdField("transaction_id", "tx-", 0),
        IdField("card_id", "card-", 5_000),
        NumericField("amount", _amount, _amount_mean, _amount_std, decimals=2),
        CategoricalField("currency", ("EUR", "USD", "GBP"), (0.6, 0.25, 0.15)),
        CategoricalField(
            "merchant_category",
            ("grocery", "restaurants", "fuel", "travel", "electronics", "fashion", "online_services"),
            (0.3, 0.15, 0.12, 0.08, 0.07, 0.1, 0.18),
        ),
        CategoricalField("country", ("DE", "FR", "ES", "IT", "NL", "US"), (0.3, 0.2, 0.15, 0.15, 0.1, 0.1)),
        BoolField("is_online", 0.35),
        NumericField(
            "installments",
            lambda rng, n: np.where(rng.random(n) < 0.85, 1, rng.integers(2, 13, n)),
            mean=1.0 + 0.15 * 6.5,
            std=1.9,
            integer=True,
        ),
        NumericField("risk_score", lambda rng, n: rng.beta(2, 8, n), 0.2, 0.12, null_rate=0.05, decimals=4),
        CategoricalField("channel", ("pos", "ecommerce", "wallet", "moto"), (0.5, 0.3, 0.17, 0.03)),
    ),
    missing_target="amount",
    wrong_type_target="amount",
    range_target="installments",
)

SENSORS = SourceModel(
    name="sensors",
    subject="sensors",
    fields=(
        IdField("sensor_id", "sensor-", 120),
        CategoricalField("site", ("plant-a", "plant-b", "plant-c"), (0.4, 0.35, 0.25)),
        NumericField("temperature_c", *_normal(65.0, 4.0), decimals=2),
        NumericField("vibration_mm_s", lambda rng, n: rng.gamma(4.0, 0.6, n), 2.4, 1.2, decimals=3),
        NumericField("pressure_kpa", *_normal(310.0, 12.0), null_rate=0.03, decimals=1),
        NumericField("rpm", *_normal(1480.0, 25.0), integer=True),
        CategoricalField("status", ("OK", "WARN", "FAULT"), (0.93, 0.06, 0.01)),
    ),
    missing_target="temperature_c",
    wrong_type_target="vibration_mm_s",
    range_target="rpm",
)

CLICKSTREAM = SourceModel(
    name="clickstream",
    subject="clickstream",
    fields=(
        IdField("session_id", "s-", 200_000),
        IdField("user_id", "u-", 20_000, null_rate=0.4),
        CategoricalField(
            "page",
            ("home", "search", "product", "cart", "checkout", "help"),
            (0.25, 0.2, 0.3, 0.1, 0.05, 0.1),
        ),
        CategoricalField("device", ("desktop", "mobile", "tablet"), (0.45, 0.45, 0.1)),
        CategoricalField(
            "referrer", ("search", "social", "email", "ads"), (0.5, 0.2, 0.15, 0.15), null_rate=0.3
        ),
        NumericField("dwell_ms", _dwell, _dwell_mean, _dwell_std, integer=True),
        NumericField("scroll_depth", lambda rng, n: rng.beta(2, 2, n), 0.5, 0.22, null_rate=0.1, decimals=3),
        NumericField("clicks", lambda rng, n: rng.poisson(3.0, n), 3.0, 1.73, integer=True),
        BoolField("is_bounce", 0.3),
    ),
    missing_target="dwell_ms",
    wrong_type_target="dwell_ms",
    range_target="clicks",
)

SOURCES: dict[str, SourceModel] = {m.name: m for m in (PAYMENTS, SENSORS, CLICKSTREAM)}


def source_model(name: str) -> SourceModel:
    """The model named ``name``; a KeyError lists the valid names."""
    if name not in SOURCES:
        raise KeyError(f"no demo source {name!r}; valid: {', '.join(SOURCES)}")
    return SOURCES[name]
