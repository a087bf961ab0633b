"""``driftline report``: one self-contained HTML file per pipeline and time range.

:mod:`driftline.report.data` reads what to show from the quality tables and the
reference profiles; :mod:`driftline.report.page` renders it (data, style and chart code
inline, nothing fetched when it is opened).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from driftline.config import PipelineConfig
from driftline.errors import ConfigError


@dataclass(frozen=True)
class Report:
    path: Path
    charts: int
    sources: tuple[str, ...]


def default_path(config: PipelineConfig) -> Path:
    return Path(config.path(config.state_dir)) / "reports" / f"{config.name}.html"


def write_report(
    config: PipelineConfig,
    path: Path | None = None,
    *,
    sources: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Report:
    """Write the report of ``sources`` (default: all) for windows starting in ``[since, until)``."""
    from driftline.reference import load_reference
    from driftline.report.data import Range, source_report
    from driftline.report.page import render

    names = sources or list(config.sources)
    for name in names:
        config.source(name)  # a ConfigError naming the valid sources
    if since is not None and until is not None and until <= since:
        raise ConfigError(f"--until ({until.isoformat()}) must be after --since ({since.isoformat()})")
    window = Range(since, until)
    data = [source_report(config, name, window, load_reference(config, name)) for name in names]
    page, charts = render(config.name, data, window_seconds=round(config.windows.size.seconds),
                          since=since.isoformat() if since else None,
                          until=until.isoformat() if until else None)  # fmt: skip
    target = Path(path) if path is not None else default_path(config)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return Report(target, charts, tuple(names))


__all__ = ["Report", "default_path", "write_report"]
