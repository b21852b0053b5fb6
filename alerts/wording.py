"""How an alert reads to a person: a metric's name and unit from its key's suffix (the
fleet's convention: `vibration_mm_s`, `bearing_temp_c`, `pressure_bar`), and the raised
message with units instead of rule ids (the rule stays in the alert's type and data)."""

from __future__ import annotations

# the same suffixes the console uses (console/static/ops.js UNITS)
UNITS = (
    ("_mm_s", "mm/s"),
    ("_c", "°C"),
    ("_bar", "bar"),
    ("_a", "A"),
    ("_v", "V"),
    ("_kw", "kW"),
    ("_pct", "%"),
    ("_rpm", "rpm"),
    ("_m", "m"),
    ("_s", "s"),
)


def metric_label(metric: str) -> tuple[str, str]:
    """(`Bearing temp`, `°C`) for `bearing_temp_c`; an unknown suffix has no unit."""
    for suffix, unit in UNITS:
        if metric.endswith(suffix) and len(metric) > len(suffix):
            return metric[: -len(suffix)].replace("_", " ").capitalize(), unit
    return metric.replace("_", " ").capitalize(), ""


def raised_message(metric: str, value: float, direction: str, limit: float, rate: bool) -> str:
    """`Vibration 10.1 mm/s, above the limit of 6 mm/s` (rates: `rising 2.5 °C/h ...`)."""
    name, unit = metric_label(metric)
    unit = f"{unit}/h" if rate else unit
    sep = " " if unit and unit != "%" else ""
    if rate:
        verb = "rising" if direction == "above" else "falling"
        return (
            f"{name} {verb} {abs(value):.3g}{sep}{unit}, beyond the limit of {limit:g}{sep}{unit}"
        )
    return f"{name} {value:.3g}{sep}{unit}, {direction} the limit of {limit:g}{sep}{unit}"


def alert_title(alert_type: str) -> str:
    """`vibration_mm_s:threshold:above` -> `Vibration too high` (the console's alertTitle)."""
    metric, _, rest = alert_type.partition(":")
    kind, _, direction = rest.partition(":")
    name = metric_label(metric)[0]
    if kind == "threshold":
        return f"{name} too {'low' if direction == 'below' else 'high'}"
    if kind == "rate_of_change":
        return f"{name} {'falling' if direction == 'below' else 'rising'} too fast"
    if alert_type == "anomaly":
        return "Unusual behaviour"
    return alert_type.replace(":", " ").replace("_", " ").replace("-", " ").capitalize()
