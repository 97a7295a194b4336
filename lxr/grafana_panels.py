"""Building blocks of Grafana panels (JSON model, schemaVersion 39) for :mod:`lxr.dashboard`:
PromQL targets, thresholds, time series and stat panels, quantile queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "DATASOURCE",
    "GRID_WIDTH",
    "NEUTRAL",
    "RATE",
    "Panel",
    "quantiles",
    "stat",
    "target",
    "targets",
    "thresholds",
    "timeseries",
]

DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"
GRID_WIDTH = 24

Panel = dict[str, Any]
"""One panel of Grafana's JSON model."""


def target(expr: str, legend: str, ref_id: str) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": True,
        "refId": ref_id,
    }


def targets(queries: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    return [target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


NEUTRAL = thresholds((None, "green"))


def timeseries(
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    *,
    unit: str,
    stack: bool = False,
    thresholds: dict[str, Any] | None = None,
    width: int = 12,
    height: int = 8,
) -> Panel:
    custom: dict[str, Any] = {
        "drawStyle": "line",
        "fillOpacity": 30 if stack else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": "line" if thresholds else "off"},
    }
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "palette-classic"},
                "custom": custom,
                "min": 0,
                "thresholds": thresholds or NEUTRAL,
                "unit": unit,
            },
            "overrides": [],
        },
        "gridPos": {"h": height, "w": width},
        "options": {
            "legend": {
                "calcs": [],
                "displayMode": "list",
                "placement": "bottom",
                "showLegend": True,
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": targets(queries),
        "title": title,
        "type": "timeseries",
    }


def stat(
    title: str,
    description: str,
    expr: str,
    *,
    unit: str,
    thresholds: dict[str, Any],
    width: int = 6,
    height: int = 4,
) -> Panel:
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {"color": {"mode": "thresholds"}, "thresholds": thresholds, "unit": unit},
            "overrides": [],
        },
        "gridPos": {"h": height, "w": width},
        "options": {
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "auto",
        },
        "targets": targets([(expr, title)]),
        "title": title,
        "type": "stat",
    }


def quantiles(metric: str, by: str, legend: str) -> list[tuple[str, str]]:
    grouping = f"le, {by}" if by else "le"
    return [
        (
            f"histogram_quantile({q}, sum by ({grouping}) (rate({metric}_bucket{RATE})))",
            f"p{round(q * 100)}{legend}",
        )
        for q in (0.5, 0.99)
    ]
