"""Train, register and load the message-intent model: the Django shell around `ml.intents`.

Versions are `ModelVersion` rows of task `message_intents`, with the same activation and rollback
as every model (`ml.registry`): a version is activated only when it beats both baselines. The
artifact is the JSON text `ml.intents.IntentModel.to_artifact` writes; loading rebuilds the model
from data, once per process and version.
"""

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from marketing.models import InboundMessage
from ml.intent_evaluation import Evaluation, evaluate, evaluation_table
from ml.intents import INTENTS, SENTIMENTS, Example, IntentModel, Prediction, detect_language, read_examples
from ml.models import ModelVersion
from ml.registry import ActivationRefused, activate_version

MESSAGE_INTENTS = "message_intents"
DATA_DIR = Path(__file__).resolve().parent / "data"
TRAINING_SET = DATA_DIR / "intents.csv"
HELD_OUT_SET = DATA_DIR / "intents_heldout.csv"


@dataclass(frozen=True)
class TrainedIntents:
    version: ModelVersion
    evaluation: Evaluation
    corrections: int


def corrections() -> list[Example]:
    """Return the labels people set in the admin inbox, as training examples (each its own group)."""
    rows = (
        InboundMessage.objects.exclude(corrected_intent="")
        .filter(corrected_intent__in=INTENTS)
        .values_list("pk", "subject", "body", "corrected_intent", "corrected_sentiment", "sentiment")
        .order_by("pk")
    )
    examples = []
    for pk, subject, body, corrected_intent, corrected_sentiment, sentiment in rows:
        text = classified_text(subject, body)
        language = detect_language(text)
        if language not in ("en", "zh") or not text.strip():
            continue  # the model reads neither language; the correction stays on the message
        label = corrected_sentiment or sentiment
        examples.append(
            Example(text, language, corrected_intent, label if label in SENTIMENTS else "neutral", f"correction-{pk}")
        )
    return examples


def classified_text(subject: str, body: str) -> str:
    """Return what the model reads of a message: its subject line, then its own words."""
    return f"{subject}\n{body}".strip() if subject else body


def train_intents(*, activate: bool = False, now: datetime | None = None) -> TrainedIntents:
    """Train a version on the shipped set and the admin's corrections; judge it; activate it if asked and earned."""
    now = now or timezone.now()
    corrected = corrections()
    examples = read_examples(TRAINING_SET) + corrected
    held_out = read_examples(HELD_OUT_SET) if HELD_OUT_SET.exists() else []
    model, evaluation = evaluate(examples, held_out)
    table = evaluation_table(evaluation)
    with transaction.atomic():
        taken = ModelVersion.objects.select_for_update().filter(task=MESSAGE_INTENTS).values_list("version", flat=True)
        number = max(taken, default=0) + 1
        version = ModelVersion.objects.create(
            task=MESSAGE_INTENTS,
            version=number,
            as_of=now,
            horizon_days=0,
            feature_names=[],
            params={"ngram_range": [1, 4], "classifier": "LinearSVC + per-class sigmoid calibration",
                    "examples": len(examples), "corrections": len(corrected)},
            metrics=evaluation.as_json(),
            beats_baselines=evaluation.beats_baselines,
            artifact=model.to_artifact(),
            card=f"message_intents v{number}, trained {now:%Y-%m-%d %H:%M} UTC on {len(examples)} examples "
            f"({len(corrected)} corrections from the inbox)\n\n{table}",
        )  # fmt: skip
    if activate:
        activate_intent_version(version)
    return TrainedIntents(version, evaluation, len(corrected))


def activate_intent_version(version: ModelVersion) -> ModelVersion:
    """Activate a version that beats both baselines; refuse one that does not, with its figures."""
    if not version.beats_baselines:
        cv, held = version.metrics.get("cross_validated") or {}, version.metrics.get("held_out") or {}
        raise ActivationRefused(
            f"{version} does not beat both baselines (macro-F1 cross-validated {cv.get('model')} vs majority "
            f"{cv.get('majority')} and keywords {cv.get('keyword')}; held-out {held.get('model')} vs "
            f"{held.get('majority')} and {held.get('keyword')}); it stays a candidate"
        )
    return activate_version(version)


_models: dict[int, IntentModel] = {}
_models_lock = threading.Lock()


def active_intent_version() -> ModelVersion | None:
    return ModelVersion.objects.active(MESSAGE_INTENTS).only("pk", "version", "task", "status").first()


def model_for(version: ModelVersion) -> IntentModel:
    """Return the version's model, rebuilt from its artifact once per process."""
    with _models_lock:
        if version.pk not in _models:
            artifact = ModelVersion.objects.values_list("artifact", flat=True).get(pk=version.pk)
            _models.clear()  # one model per process at a time: an old version is not needed after a switch
            _models[version.pk] = IntentModel.from_artifact(artifact)
        return _models[version.pk]


def forget_loaded_models() -> None:
    """Drop the per-process cache (tests roll back versions between them)."""
    with _models_lock:
        _models.clear()


def classify_texts(texts: list[str]) -> tuple[list[Prediction], ModelVersion] | None:
    """Classify texts with the active model; None when no version is active."""
    version = active_intent_version()
    if version is None:
        return None
    return model_for(version).predict(texts), version
