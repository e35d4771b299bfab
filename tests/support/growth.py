"""Does a parser's time grow at most linearly with its input? Compare size n with size 8n.

Not a timing test: both sizes run in the same test, on the same machine, back to back, and only
their ratio counts. A linear parser takes about 8x as long on 8x the input; a quadratic one about
64x. Each size is timed a few times and the fastest run kept, so a busy machine that stalls one
run does not decide the answer; the allowed factor is generous for the same reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SCALE = 8
# Linear gives ~8; quadratic ~64. Anything under 24 is "at most linear" with room for noise.
MAX_RATIO = 24.0


def _fastest(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def growth_ratio(make_input: Callable[[int], object], parse: Callable[[object], object], n: int,
                 repeats: int = 5) -> float:
    """time(parse(make_input(8n))) / time(parse(make_input(n))), fastest of `repeats` each."""
    small, large = make_input(n), make_input(SCALE * n)
    parse(small)  # warm caches (compiled regexes, imports) before anything is timed
    small_time = _fastest(lambda: parse(small), repeats)
    large_time = _fastest(lambda: parse(large), repeats)
    return large_time / max(small_time, 1e-6)


def assert_linear(make_input: Callable[[int], object], parse: Callable[[object], object], n: int,
                  repeats: int = 5) -> None:
    ratio = growth_ratio(make_input, parse, n, repeats)
    assert ratio < MAX_RATIO, f"{SCALE}x the input took {ratio:.1f}x the time (linear ~{SCALE}x)"
