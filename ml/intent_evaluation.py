"""Judging the intent model: grouped cross-validation and a held-out set, against a majority-class and a keyword baseline.

Macro-F1 (every intent counts the same, whatever its share), per language, with the F1 of each
intent, the sentiment's macro-F1 and the calibration error of the intent confidence. A version is
fit for activation when it clears the majority class by MARGIN_OVER_MAJORITY and beats the keyword
rules, cross-validated and held out. No Django here.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import GroupKFold

from ml.intents import INTENTS, LANGUAGES, Example, IntentModel, Prediction, normalise

CV_FOLDS = 5
# Activation needs this much macro-F1 over the majority baseline, and a win over the keyword rules.
MARGIN_OVER_MAJORITY = 0.3

# The keyword baseline: the first rule with a keyword in the message decides, else "other".
KEYWORD_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unsubscribe_request", ("unsubscribe", "mailing list", "stop sending", "opt out", "remove me", "newsletter",
                             "退订", "取消订阅", "别再发", "不要再发", "不想再收到")),
    ("shipping_address_change", ("change the address", "change my address", "delivery address", "wrong address",
                                 "shipping address", "new address", "改地址", "收货地址", "地址")),
    ("return_refund", ("refund", "return", "exchange", "money back", "cancel", "退款", "退货", "换货", "取消订单", "退")),
    ("order_status", ("where is my order", "tracking", "arrive", "delivered", "shipped", "dispatch", "物流", "快递",
                      "发货", "到哪", "单号")),
    ("complaint", ("terrible", "disappointed", "worst", "awful", "complaint", "unacceptable", "rude", "poor",
                   "投诉", "太差", "失望", "垃圾")),
    ("praise", ("thank", "love", "great", "amazing", "excellent", "happy", "谢谢", "喜欢", "满意", "好评", "棒")),
    ("product_question", ("size", "colour", "color", "material", "stock", "waterproof", "compatible", "尺码", "材质",
                          "有货", "颜色", "防水")),
)  # fmt: skip


def keyword_intent(text: str) -> str:
    """The keyword baseline's intent for a message."""
    lowered = normalise(text).lower()
    for intent, keywords in KEYWORD_RULES:
        if any(keyword in lowered for keyword in keywords):
            return intent
    return "other"


@dataclass(frozen=True)
class Scores:
    """Macro-F1 of the model and its baselines on one set, overall and per language."""

    model: float
    majority: float
    keyword: float
    sentiment: float
    by_language: dict[str, float]
    per_intent: dict[str, float]
    calibration_error: float  # expected calibration error of the intent confidence, 10 bins
    examples: int


@dataclass(frozen=True)
class Evaluation:
    cross_validated: Scores
    held_out: Scores | None

    @property
    def beats_baselines(self) -> bool:
        """Clear of the majority class by MARGIN_OVER_MAJORITY and above the keyword rules, on every set judged."""
        sets = [scores for scores in (self.cross_validated, self.held_out) if scores is not None]
        return all(s.model >= s.majority + MARGIN_OVER_MAJORITY and s.model > s.keyword for s in sets)

    def as_json(self) -> dict:
        return {
            "cross_validated": asdict(self.cross_validated),
            "held_out": asdict(self.held_out) if self.held_out else None,
        }


def macro_f1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    return round(float(f1_score(truth, predicted, labels=sorted(set(truth)), average="macro", zero_division=0)), 4)


def calibration_error(confidences: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the gap between confidence and accuracy, weighted by bin size."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidences, edges[1:-1]), 0, bins - 1)
    error = sum(
        abs(confidences[which == b].mean() - correct[which == b].mean()) * (which == b).mean()
        for b in range(bins)
        if (which == b).any()
    )
    return round(float(error), 4)


def score(examples: Sequence[Example], predictions: Sequence[Prediction], majority_intent: str) -> Scores:
    truth = [example.intent for example in examples]
    predicted = [prediction.intent for prediction in predictions]
    by_language = {}
    for language in LANGUAGES:
        rows = [index for index, example in enumerate(examples) if example.language == language]
        if rows:
            by_language[language] = macro_f1([truth[i] for i in rows], [predicted[i] for i in rows])
    f1_each = f1_score(truth, predicted, labels=list(INTENTS), average=None, zero_division=0)
    return Scores(
        model=macro_f1(truth, predicted),
        majority=macro_f1(truth, [majority_intent] * len(truth)),
        keyword=macro_f1(truth, [keyword_intent(example.text) for example in examples]),
        sentiment=macro_f1([example.sentiment for example in examples], [p.sentiment for p in predictions]),
        by_language=by_language,
        per_intent={intent: round(float(value), 4) for intent, value in zip(INTENTS, f1_each, strict=True)},
        calibration_error=calibration_error(
            np.array([p.confidence for p in predictions]),
            np.array([p == t for p, t in zip(predicted, truth, strict=True)]),
        ),
        examples=len(examples),
    )


def majority(examples: Iterable[Example]) -> str:
    """The most frequent intent (ties broken by INTENTS order): the majority baseline's only answer."""
    counts = Counter(example.intent for example in examples)
    return max(INTENTS, key=lambda intent: (counts[intent], -INTENTS.index(intent)))


def cross_validate(examples: Sequence[Example], folds: int = CV_FOLDS) -> Scores:
    """Score models fitted on folds of the set, each judged on the messages it did not see.

    Folds are grouped: every variant of one written message lands in the same fold, so a fold never
    tests the model on a near-copy of what it learned from.
    """
    groups = np.array([example.group or str(index) for index, example in enumerate(examples)])
    predictions: list[Prediction | None] = [None] * len(examples)
    for train, test in GroupKFold(folds).split(np.zeros(len(examples)), groups=groups):
        model = IntentModel.fit([examples[i] for i in train])
        for index, prediction in zip(test, model.predict([examples[i].text for i in test]), strict=True):
            predictions[index] = prediction
    return score(examples, predictions, majority(examples))


def evaluate(examples: Sequence[Example], held_out: Sequence[Example] | None) -> tuple[IntentModel, Evaluation]:
    """Fit the model on every example, and judge it by cross-validation and on the held-out set."""
    cross_validated = cross_validate(examples)
    model = IntentModel.fit(examples)
    held = None
    if held_out:
        held = score(held_out, model.predict([example.text for example in held_out]), majority(examples))
    return model, Evaluation(cross_validated, held)


def evaluation_table(evaluation: Evaluation) -> str:
    """Return the figures as the training command prints them and the model card keeps them."""
    lines = [
        f"{'macro-F1':<44}{'model':>8}{'majority':>10}{'keywords':>10}{'sentiment':>11}{'en':>8}{'zh':>8}{'ECE':>8}"
    ]
    for title, scores in (
        (f"cross-validated ({CV_FOLDS} grouped folds)", evaluation.cross_validated),
        ("held-out", evaluation.held_out),
    ):
        if scores is None:
            continue
        lines.append(
            f"{f'{title}, n={scores.examples}':<44}{scores.model:>8.3f}{scores.majority:>10.3f}{scores.keyword:>10.3f}"
            f"{scores.sentiment:>11.3f}{scores.by_language.get('en', float('nan')):>8.3f}"
            f"{scores.by_language.get('zh', float('nan')):>8.3f}{scores.calibration_error:>8.3f}"
        )
    lines.append("")
    lines.append(f"{'F1 per intent':<44}{'cv':>8}{'held-out':>10}")
    for intent in INTENTS:
        held = evaluation.held_out.per_intent[intent] if evaluation.held_out else float("nan")
        lines.append(f"{intent:<44}{evaluation.cross_validated.per_intent[intent]:>8.3f}{held:>10.3f}")
    return "\n".join(lines)
