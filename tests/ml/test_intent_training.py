"""Training the intent model from scratch: the acceptance figures, activation against the baselines, corrections learnt."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from marketing.models import InboundMessage
from ml.intent_registry import MESSAGE_INTENTS, activate_intent_version, corrections, train_intents
from ml.models import ModelStatus, ModelVersion
from ml.registry import ActivationRefused, roll_back

pytestmark = pytest.mark.django_db


def test_a_fresh_training_meets_the_acceptance_figures_and_is_activated(office_hours):
    output = StringIO()

    call_command("train_intents", "--activate", stdout=output)

    version = ModelVersion.objects.get(task=MESSAGE_INTENTS)
    cv, held = version.metrics["cross_validated"], version.metrics["held_out"]
    assert version.status == ModelStatus.ACTIVE
    assert cv["model"] >= 0.85
    assert held["model"] >= 0.75
    assert cv["model"] >= cv["majority"] + 0.3
    assert held["model"] >= held["majority"] + 0.3
    assert held["model"] > held["keyword"]
    assert cv["model"] > cv["keyword"]
    assert set(held["by_language"]) == {"en", "zh"}
    printed = output.getvalue()
    assert f"{cv['model']:.3f}" in printed and f"{held['model']:.3f}" in printed
    assert "majority" in printed and "keywords" in printed
    assert printed.rstrip().endswith(f"activated {MESSAGE_INTENTS} v1 (active)")
    assert version.card.startswith(f"message_intents v1, trained {office_hours:%Y-%m-%d %H:%M} UTC")


def test_a_version_that_does_not_beat_both_baselines_is_refused_and_stays_a_candidate():
    version = ModelVersion.objects.create(
        task=MESSAGE_INTENTS,
        version=1,
        horizon_days=0,
        beats_baselines=False,
        metrics={"cross_validated": {"model": 0.4, "majority": 0.03, "keyword": 0.5}, "held_out": {"model": 0.4}},
    )

    with pytest.raises(
        ActivationRefused,
        match=r"does not beat both baselines \(macro-F1 cross-validated 0.4 vs majority 0.03 and keywords 0.5",
    ):
        activate_intent_version(version)

    version.refresh_from_db()
    assert version.status == ModelStatus.CANDIDATE


def test_an_intent_version_rolls_back_like_every_model():
    first = ModelVersion.objects.create(task=MESSAGE_INTENTS, version=1, horizon_days=0, beats_baselines=True)
    second = ModelVersion.objects.create(task=MESSAGE_INTENTS, version=2, horizon_days=0, beats_baselines=True)
    activate_intent_version(first)
    activate_intent_version(second)

    assert roll_back(MESSAGE_INTENTS) == first

    assert ModelVersion.objects.get(pk=first.pk).status == ModelStatus.ACTIVE
    assert ModelVersion.objects.get(pk=second.pk).status == ModelStatus.RETIRED


def _message(body: str, **fields) -> InboundMessage:
    return InboundMessage.objects.create(
        external_id=f"m-{InboundMessage.objects.count()}", body=body, received_at=timezone.now(), **fields
    )


def test_corrections_made_in_the_inbox_become_labelled_examples():
    _message(
        "Do you sell gift wrapping paper?", intent="product_question", sentiment="neutral", corrected_intent="other"
    )
    _message(
        "我要投诉你们的快递",
        intent="complaint",
        sentiment="negative",
        corrected_intent="complaint",
        corrected_sentiment="negative",
    )
    _message("Bitte keine Werbung mehr", corrected_intent="unsubscribe_request")  # a language the model does not read
    _message("where is my parcel", intent="order_status", sentiment="neutral")  # never corrected

    examples = corrections()

    assert [(e.text, e.language, e.intent, e.sentiment) for e in examples] == [
        ("Do you sell gift wrapping paper?", "en", "other", "neutral"),
        ("我要投诉你们的快递", "zh", "complaint", "negative"),
    ]
    assert [e.group for e in examples] == [
        f"correction-{pk}"
        for pk in InboundMessage.objects.filter(corrected_intent__in=["other", "complaint"])
        .order_by("pk")
        .values_list("pk", flat=True)
    ]


def test_the_next_training_learns_from_the_corrections(office_hours):
    _message("Is the blue mug back?", intent="other", sentiment="neutral", corrected_intent="product_question")

    trained = train_intents()

    assert trained.corrections == 1
    assert trained.version.params["corrections"] == 1
    assert trained.version.status == ModelStatus.CANDIDATE
    assert "(1 corrections from the inbox)" in trained.version.card


def test_activation_is_refused_by_the_command_with_the_figures(monkeypatch):
    monkeypatch.setattr("ml.intent_evaluation.Evaluation.beats_baselines", property(lambda self: False))

    with pytest.raises(CommandError, match="does not beat both baselines"):
        call_command("train_intents", "--activate", stdout=StringIO())

    assert ModelVersion.objects.get(task=MESSAGE_INTENTS).status == ModelStatus.CANDIDATE
