"""A customer's reasons, computed when their page or the API asks, then kept with the score.

Bulk scoring writes probabilities and deciles only (and reasons for the top deciles when
ML_REASONS_TOP_DECILES asks). Here one customer's features are read again as of the moment the
score was computed, explained by the version that computed it, worded, and stored on the score
row, so the next request reads them back.
"""

import json

from ml.models import Score, ScoringRun
from ml.queries import read_aggregates, read_season_index
from ml.reasons import worded
from ml.registry import scorer_for


def reasons_for(score: Score) -> list[dict]:
    """Return the score's reasons in plain words, computing and storing them the first time."""
    if score.reasons is not None:
        return worded(score.reasons, score.model_version.horizon_days) if _unworded(score.reasons) else score.reasons
    version = score.model_version
    scorer = scorer_for(version)
    aggregates = read_aggregates(score.scored_at, score.customer_id, score.customer_id)
    if aggregates.empty:
        return []
    season = _season_of(score)
    explained = scorer.score(scorer.features(aggregates, score.scored_at.timestamp(), season))
    reasons = worded(json.loads(explained.reasons[0]), version.horizon_days)
    # Two requests at once compute the same reasons; whichever writes first is kept.
    Score.objects.filter(pk=score.pk, reasons__isnull=True).update(reasons=reasons)
    score.reasons = reasons
    return reasons


def _season_of(score: Score) -> float:
    """Return the season index the score was computed with: its run's, read again only without one."""
    run = ScoringRun.objects.filter(model_version_id=score.model_version_id, as_of=score.scored_at).order_by("-pk")
    stored = run.values_list("season_index", flat=True).first()
    return stored if stored is not None else read_season_index(score.scored_at, score.model_version.horizon_days)


def _unworded(reasons: list[dict]) -> bool:
    """Reasons written in bulk (top deciles) carry numbers only."""
    return any("text" not in reason for reason in reasons)
