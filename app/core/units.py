"""Human-readable numbers for messages a person reads."""

from __future__ import annotations

_UNITS = (("GB", 1e9), ("MB", 1e6), ("kB", 1e3))


def format_bytes(n: float) -> str:
    """Decimal units as model hubs show sizes: '1.89 GB', '412 MB', '3.5 MB', '900 bytes'."""
    for unit, scale in _UNITS:
        if abs(n) >= scale:
            value = n / scale
            if unit == "GB":
                return f"{value:.2f} GB"
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{int(n)} bytes"

