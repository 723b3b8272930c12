"""pass@1 with a confidence interval, and exact match.

With one greedy sample per problem pass@1 is a plain proportion; its uncertainty over the
problems drawn is what a reader needs to tell two quants apart. The Wilson score interval
stays inside [0, 1] and behaves at 0 % and 100 %, where the textbook normal interval
collapses to a width of zero.
"""

from __future__ import annotations

import math

#: z for a two-sided 95 % interval.
Z95 = 1.959963984540054


def wilson_interval(passed: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``passed`` successes in ``n`` trials, as fractions."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= passed <= n:
        raise ValueError(f"passed must be 0 to {n}, not {passed}")
    p = passed / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def exact_match(completion: str, canonical: str) -> bool:
    """The same code up to whitespace at both ends (a trailing newline is not a mistake)."""
    return completion.strip() == canonical.strip()
