"""The pure intent model and its baselines: languages, keyword rules, artifact round trip, calibration, bad labels."""

import json
from pathlib import Path

import numpy as np
import pytest

from ml.intent_evaluation import keyword_intent, majority
from ml.intents import (
    INTENTS,
    MAX_CLASSIFIED_CHARS,
    UNSUPPORTED_CONFIDENCE,
    Example,
    IntentModel,
    LabelError,
    detect_language,
    normalise,
    read_examples,
)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Where is my order 10234?", "en"),
        ("wher is my oder", "en"),
        ("ok", "en"),
        ("我的订单到哪了？", "zh"),
        ("我的order什么时候到", "zh"),
        ("tracking number是多少", "zh"),
        ("Wo ist meine Bestellung? Ich warte seit einer Woche.", "other"),
        ("Bonjour, je n'ai pas reçu ma commande.", "other"),
        ("¿Dónde está mi pedido?", "other"),
        ("注文した商品はいつ届きますか", "other"),
        ("배송은 언제 되나요", "other"),
        ("Где мой заказ?", "other"),
        ("👍👍", "other"),
        ("12345 !!!", "other"),
        ("", "other"),
    ],
)
def test_the_language_is_told_by_script_and_common_words(text, language):
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("Please unsubscribe me from the newsletter", "unsubscribe_request"),
        ("I want a refund", "return_refund"),
        ("帮我查一下物流", "order_status"),
        ("Hello there", "other"),
    ],
)
def test_the_keyword_baseline_takes_the_first_rule_that_matches(text, intent):
    assert keyword_intent(text) == intent


def test_the_majority_baseline_answers_the_most_frequent_intent():
    examples = [
        Example("a", "en", "praise", "positive"),
        Example("b", "en", "praise", "positive"),
        Example("c", "en", "other", "neutral"),
    ]

    assert majority(examples) == "praise"


def test_normalise_folds_full_width_forms_and_bounds_the_length():
    assert normalise("ＯＲＤＥＲ　１２３？\n\n  ok") == "ORDER 123? ok"
    assert len(normalise("x" * (MAX_CLASSIFIED_CHARS + 50))) == MAX_CLASSIFIED_CHARS


@pytest.fixture(scope="module")
def small_model() -> IntentModel:
    examples = [
        Example(text, language, intent, sentiment, f"g{index // 2}")
        for index, (text, language, intent, sentiment) in enumerate(
            [
                ("where is my order", "en", "order_status", "neutral"),
                ("has my parcel shipped yet", "en", "order_status", "neutral"),
                ("my package has not arrived", "en", "order_status", "negative"),
                ("tracking number please", "en", "order_status", "neutral"),
                ("I want a refund", "en", "return_refund", "neutral"),
                ("how do I return this", "en", "return_refund", "neutral"),
                ("refund me now, it broke", "en", "return_refund", "negative"),
                ("can I send it back", "en", "return_refund", "neutral"),
                ("thank you, I love it", "en", "praise", "positive"),
                ("great service, thanks", "en", "praise", "positive"),
                ("wonderful shop", "en", "praise", "positive"),
                ("so happy with it", "en", "praise", "positive"),
            ]
        )
    ]
    return IntentModel.fit(examples)


def test_a_model_rebuilt_from_its_artifact_predicts_exactly_as_the_fitted_one(small_model):
    texts = ["where is my parcel", "refund please", "love it, thanks", "我的订单"]

    rebuilt = IntentModel.from_artifact(small_model.to_artifact())

    assert rebuilt.predict(texts) == small_model.predict(texts)


def test_the_artifact_is_json_data_with_no_code_in_it(small_model):
    data = json.loads(small_model.to_artifact())

    assert data["format"] == "kairos.intents/1"
    assert set(data) == {"format", "ngram_range", "vocabulary", "idf", "intent", "sentiment"}
    assert data["intent"]["classes"] == ["order_status", "return_refund", "praise"]


def test_an_artifact_of_another_format_is_refused(small_model):
    data = json.loads(small_model.to_artifact())
    data["format"] = "pickle"

    with pytest.raises(ValueError, match="not a kairos.intents/1 artifact"):
        IntentModel.from_artifact(json.dumps(data))


def test_confidences_are_probabilities_that_sum_to_one(small_model):
    features = small_model._vectorizer.transform(["where is my order", "random words here"])

    probabilities = small_model.intent.probabilities(features)

    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_a_message_in_another_language_is_other_at_a_uniform_guess_confidence(small_model):
    [prediction] = small_model.predict(["Wo ist meine Bestellung? Ich warte schon lange."])

    assert (prediction.language, prediction.intent, prediction.confidence) == ("other", "other", UNSUPPORTED_CONFIDENCE)
    assert round(1 / len(INTENTS), 3) == UNSUPPORTED_CONFIDENCE


def test_a_labelled_file_with_an_unknown_intent_is_refused_with_its_line_and_field(tmp_path: Path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "text,language,intent,sentiment\nhello,en,other,neutral\nhi,en,greeting,neutral\n", encoding="utf-8"
    )

    with pytest.raises(LabelError, match=r"line 3, intent: 'greeting' is not one of order_status"):
        read_examples(path)


def test_a_labelled_file_without_a_column_is_refused_naming_it(tmp_path: Path):
    path = tmp_path / "labels.csv"
    path.write_text("text,intent\nhello,other\n", encoding="utf-8")

    with pytest.raises(LabelError, match="missing column\\(s\\) language, sentiment"):
        read_examples(path)


def test_the_shipped_set_has_150_examples_per_intent_and_language_and_a_separate_held_out_set():
    from collections import Counter

    from ml.intent_registry import HELD_OUT_SET, TRAINING_SET

    shipped = read_examples(TRAINING_SET)
    held_out = read_examples(HELD_OUT_SET)
    counts = Counter((example.language, example.intent) for example in shipped)

    assert min(counts[(language, intent)] for language in ("en", "zh") for intent in INTENTS) >= 150
    assert {example.sentiment for example in shipped} == {"negative", "neutral", "positive"}
    assert not {example.text for example in held_out} & {example.text for example in shipped}
    assert Counter(example.language for example in held_out) == {"en": 200, "zh": 200}
