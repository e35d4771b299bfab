"""Fusion of several rankings of the same items: by rank (RRF) or by score distribution (DBSF)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[K]], *, k: float = 60.0, weights: Sequence[float] | None = None,
) -> list[tuple[K, float]]:
    """Fuse best-first rankings: score(item) = sum over rankings of weight / (k + rank), rank from 1.

    Returns (item, score) best first; ties keep the order in which items were first seen.
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per ranking")
    if k < 0:
        raise ValueError("k must be >= 0")
    scores: dict[K, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def distribution_score_fusion(
    results: Sequence[Sequence[tuple[K, float]]], *, weights: Sequence[float] | None = None,
) -> list[tuple[K, float]]:
    """Fuse scored result lists by their score distributions (Qdrant's DBSF, with weights).

    Each list's scores are mapped to [0, 1] by (score - (mean - 3 sd)) / (6 sd), using that list's
    mean and sample standard deviation (a list of one, or of equal scores, maps to 0.5); an item's
    fused score is the weighted sum over the lists it is in. Returns (item, score) best first.
    """
    if weights is None:
        weights = [1.0] * len(results)
    if len(weights) != len(results):
        raise ValueError("one weight per result list")
    scores: dict[K, float] = {}
    for result, weight in zip(results, weights, strict=True):
        for item, normalised in _normalise(result):
            scores[item] = scores.get(item, 0.0) + weight * normalised
    return sorted(scores.items(), key=lambda pair: pair[1], reverse=True)


def _normalise(result: Sequence[tuple[K, float]]) -> list[tuple[K, float]]:
    if len(result) < 2:
        return [(item, 0.5) for item, _ in result]
    values = [score for _, score in result]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    if sd == 0:
        return [(item, 0.5) for item, _ in result]
    low = mean - 3 * sd
    return [(item, (score - low) / (6 * sd)) for item, score in result]
