"""What a customer's message is about and how they feel: intents and sentiment, in English and Chinese.

One character n-gram TF-IDF space (n-grams need no word segmenter, so Chinese works as it is, and
typos still share most of their n-grams with the right word) feeds two linear heads: the intent
(eight classes) and the sentiment (three). Each head is a linear SVM whose decision values are
calibrated per class with Platt's sigmoid, fitted on grouped cross-validated decisions, then
normalised: the confidence of a prediction is a probability, not a margin.

A fitted model travels as JSON text: the vocabulary, the IDF weights and each head's coefficients
(little-endian float32, base64) and calibration. Loading rebuilds the vectorizer from that data;
nothing is unpickled, so a stored artifact can never run code.

Messages in neither English nor Chinese are not guessed at: they get `other` with the confidence of
a uniform guess, so nothing automatic happens and a person reads them. How well it does, against
a majority-class and a keyword-rule baseline, is `ml.intent_evaluation`'s business.

No Django here: texts and labels in, predictions out.
"""

import base64
import csv
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.svm import LinearSVC

INTENTS = (
    "order_status",
    "return_refund",
    "complaint",
    "product_question",
    "shipping_address_change",
    "unsubscribe_request",
    "praise",
    "other",
)
SENTIMENTS = ("negative", "neutral", "positive")
LANGUAGES = ("en", "zh")
OTHER_LANGUAGE = "other"
# A message in a language the model was not taught gets the confidence of a uniform guess.
UNSUPPORTED_CONFIDENCE = round(1 / len(INTENTS), 3)
# The intent is nearly always in the first lines; the rest of a long mail only costs time.
MAX_CLASSIFIED_CHARS = 2_000
ARTIFACT_FORMAT = "kairos.intents/1"
NGRAM_RANGE = (1, 4)
MIN_DOCUMENT_FREQUENCY = 2
SVM_C = 0.5
CALIBRATION_FOLDS = 3

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_OTHER_SCRIPTS = re.compile(r"[\u0370-\u03ff\u0400-\u052f\u0590-\u05ff\u0600-\u06ff\u0900-\u097f\u0e00-\u0e7f]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
_WORD = re.compile(r"[a-z\u00c0-\u024f']+")
_SPACES = re.compile(r"\s+")
_FOREIGN_LETTERS = re.compile(r"[ßäöüñ¿¡çãõøåæœąęłńśźżčřšžğış]")
_ENGLISH_WORDS = frozenset(
    [
        "the",
        "and",
        "is",
        "my",
        "i",
        "you",
        "to",
        "of",
        "it",
        "for",
        "in",
        "on",
        "not",
        "have",
        "has",
        "was",
        "what",
        "where",
        "when",
        "how",
        "can",
        "could",
        "please",
        "order",
        "with",
        "this",
        "that",
        "me",
        "be",
        "are",
        "do",
        "did",
        "your",
        "an",
        "thanks",
        "thank",
        "hi",
        "hello",
        "would",
        "will",
        "get",
        "got",
        "just",
        "still",
        "been",
        "want",
        "need",
        "from",
        "they",
        "there",
        "about",
        "why",
        "any",
        "our",
        "if",
        "or",
        "but",
        "so",
    ]
)
# Common words of languages customers often write in that are not English; words English shares are left out.
_FOREIGN_WORDS = {
    "de": frozenset(["ich", "und", "nicht", "ist", "mein", "meine", "der", "das", "bitte", "danke", "wo", "wann", "bestellung", "habe", "mit", "für", "ein", "eine", "sie", "noch", "zu", "auf", "kann", "wir", "keine", "kein", "mehr", "schon", "auch", "aus", "bei", "nach", "ihr", "ihre", "uns", "dem", "den", "vom", "zum", "wie", "warum"]),
    "fr": frozenset(["je", "et", "est", "mon", "ma", "mes", "les", "le", "pas", "merci", "bonjour", "commande", "vous", "pour", "avec", "une", "où", "quand", "colis", "reçu", "ne", "plus", "des", "du", "au", "aux", "qui", "mais", "très", "bien", "votre", "vos", "suis"]),
    "es": frozenset(["el", "los", "mi", "mis", "es", "y", "por", "favor", "gracias", "hola", "pedido", "dónde", "cuándo", "que", "qué", "una", "con", "para", "tengo", "muy", "bien", "pero", "su", "sus", "del", "al", "ya", "nada"]),
    "it": frozenset(["il", "mio", "mia", "è", "non", "per", "grazie", "ciao", "ordine", "dove", "quando", "che", "sono", "ho", "con", "una"]),
    "pt": frozenset(["meu", "minha", "é", "não", "por", "obrigado", "obrigada", "olá", "pedido", "onde", "quando", "que", "com", "uma", "para"]),
    "nl": frozenset(["ik", "en", "niet", "mijn", "het", "een", "bedankt", "bestelling", "waar", "wanneer", "graag", "van", "met"]),
}  # fmt: skip


class LabelError(ValueError):
    """A labelled example is unusable; the message names the file, line and field."""


@dataclass(frozen=True)
class Example:
    text: str
    language: str
    intent: str
    sentiment: str
    group: str = ""  # variants of one written message share a group, and a fold


@dataclass(frozen=True)
class Prediction:
    language: str
    intent: str
    sentiment: str
    confidence: float  # calibrated probability of the intent
    sentiment_confidence: float


def normalise(text: str) -> str:
    """Return the text as the model reads it: NFKC (full-width forms folded), one space between words, bounded."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()[:MAX_CLASSIFIED_CHARS]


def detect_language(text: str) -> str:
    """Return "zh", "en" or "other" for a message, from its scripts and, for Latin script, its common words."""
    han = len(_HAN.findall(text))
    if _KANA.search(text) or _HANGUL.search(text):
        return OTHER_LANGUAGE
    latin = len(_LATIN.findall(text))
    if han >= 2 or (han == 1 and latin <= 20):
        return "zh"
    foreign_script = len(_OTHER_SCRIPTS.findall(text))
    if foreign_script > latin:
        return OTHER_LANGUAGE
    if latin == 0:
        return OTHER_LANGUAGE  # digits, punctuation or emoji alone say nothing
    words = _WORD.findall(text.lower())
    english = sum(word in _ENGLISH_WORDS for word in words)
    foreign = max(sum(word in vocabulary for word in words) for vocabulary in _FOREIGN_WORDS.values())
    foreign += len(_FOREIGN_LETTERS.findall(text.lower())) > 0
    return OTHER_LANGUAGE if foreign >= 2 and foreign > english else "en"


def read_examples(path: Path) -> list[Example]:
    """Read a labelled CSV (text, language, intent, sentiment[, group]); refuse a bad row naming its line and field."""
    examples = []
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"text", "language", "intent", "sentiment"} - set(reader.fieldnames or ())
        if missing:
            raise LabelError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            for name, allowed in (("language", LANGUAGES), ("intent", INTENTS), ("sentiment", SENTIMENTS)):
                if row[name] not in allowed:
                    raise LabelError(f"{path}, line {line}, {name}: {row[name]!r} is not one of {', '.join(allowed)}")
            if not row["text"].strip():
                raise LabelError(f"{path}, line {line}, text: is empty")
            examples.append(
                Example(
                    row["text"], row["language"], row["intent"], row["sentiment"], row.get("group") or f"line-{line}"
                )
            )
    return examples


# --- The model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Head:
    classes: tuple[str, ...]
    coef: np.ndarray  # (classes, features), float32
    intercept: np.ndarray  # (classes,)
    calibration: np.ndarray  # (classes, 2): slope and offset of each class's sigmoid

    def probabilities(self, features) -> np.ndarray:
        decision = np.asarray(features @ self.coef.T) + self.intercept
        calibrated = 1.0 / (1.0 + np.exp(-(decision * self.calibration[:, 0] + self.calibration[:, 1])))
        total = calibrated.sum(axis=1, keepdims=True)
        # Every sigmoid near zero: nothing is preferred, which a uniform distribution says honestly.
        return np.divide(calibrated, total, out=np.full_like(calibrated, 1 / len(self.classes)), where=total > 0)

    def as_json(self) -> dict:
        return {
            "classes": list(self.classes),
            "coef": _encode(self.coef),
            "intercept": self.intercept.tolist(),
            "calibration": self.calibration.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict, features: int) -> "_Head":
        classes = tuple(data["classes"])
        coef = _decode(data["coef"]).reshape(len(classes), features)
        return cls(classes, coef, np.asarray(data["intercept"], dtype=np.float64), np.asarray(data["calibration"]))


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float32)


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(
        analyzer="char",
        ngram_range=NGRAM_RANGE,
        lowercase=True,
        sublinear_tf=True,
        min_df=1 if vocabulary is not None else MIN_DOCUMENT_FREQUENCY,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


def _fit_head(features, labels: np.ndarray, groups: np.ndarray, classes: Sequence[str]) -> _Head:
    """Fit the SVM on everything, and each class's sigmoid on decisions it made on folds it did not see."""
    present = [label for label in classes if (labels == label).any()]
    folds = min(CALIBRATION_FOLDS, len(set(groups)))
    decisions = np.zeros((len(labels), len(present)))
    for train, test in GroupKFold(folds).split(features, labels, groups):
        model = LinearSVC(C=SVM_C, random_state=0).fit(features[train], labels[train])
        fold_decisions = model.decision_function(features[test])
        for column, label in enumerate(model.classes_):
            decisions[test, present.index(label)] = (
                fold_decisions[:, column]
                if fold_decisions.ndim > 1
                else (fold_decisions if column == 1 else -fold_decisions)
            )
    calibration = []
    for column, label in enumerate(present):
        target = (labels == label).astype(int)
        sigmoid = (
            LogisticRegression(C=1e4).fit(decisions[:, [column]], target) if 0 < target.sum() < len(target) else None
        )
        calibration.append([sigmoid.coef_[0, 0], sigmoid.intercept_[0]] if sigmoid is not None else [1.0, 0.0])
    final = LinearSVC(C=SVM_C, random_state=0).fit(features, labels)
    order = [list(final.classes_).index(label) for label in present]
    coef, intercept = final.coef_, final.intercept_
    if len(present) == 2:  # a binary SVM has one row; spell it out as two opposite ones
        coef, intercept = np.vstack([-coef, coef]), np.array([-intercept[0], intercept[0]])
    return _Head(tuple(present), coef[order].astype(np.float32), intercept[order], np.asarray(calibration))


@dataclass
class IntentModel:
    """The fitted vectorizer and the intent and sentiment heads."""

    vocabulary: list[str]
    idf: np.ndarray
    intent: _Head
    sentiment: _Head
    _vectorizer: TfidfVectorizer = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._vectorizer = _vectorizer({term: index for index, term in enumerate(self.vocabulary)})
        self._vectorizer.idf_ = self.idf

    @classmethod
    def fit(cls, examples: Sequence[Example]) -> "IntentModel":
        texts = [normalise(example.text) for example in examples]
        groups = np.array([example.group or str(index) for index, example in enumerate(examples)])
        vectorizer = _vectorizer()
        features = vectorizer.fit_transform(texts)
        intents = np.array([example.intent for example in examples])
        sentiments = np.array([example.sentiment for example in examples])
        return cls(
            vocabulary=vectorizer.get_feature_names_out().tolist(),
            idf=vectorizer.idf_.astype(np.float32),
            intent=_fit_head(features, intents, groups, INTENTS),
            sentiment=_fit_head(features, sentiments, groups, SENTIMENTS),
        )

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Classify messages; those in neither English nor Chinese get `other` at a uniform guess's confidence."""
        languages = [detect_language(text) for text in texts]
        supported = [index for index, language in enumerate(languages) if language != OTHER_LANGUAGE]
        predictions = [
            Prediction(language, "other", "neutral", UNSUPPORTED_CONFIDENCE, round(1 / len(SENTIMENTS), 3))
            for language in languages
        ]
        if supported:
            features = self._vectorizer.transform([normalise(texts[index]) for index in supported])
            intents = self.intent.probabilities(features)
            sentiments = self.sentiment.probabilities(features)
            best_intent, best_sentiment = intents.argmax(axis=1), sentiments.argmax(axis=1)
            for row, index in enumerate(supported):
                predictions[index] = Prediction(
                    languages[index],
                    self.intent.classes[best_intent[row]],
                    self.sentiment.classes[best_sentiment[row]],
                    round(float(intents[row, best_intent[row]]), 3),
                    round(float(sentiments[row, best_sentiment[row]]), 3),
                )
        return predictions

    def to_artifact(self) -> str:
        """Return the model as JSON text: data only, rebuilt by `from_artifact`."""
        return json.dumps(
            {
                "format": ARTIFACT_FORMAT,
                "ngram_range": list(NGRAM_RANGE),
                "vocabulary": self.vocabulary,
                "idf": _encode(self.idf),
                "intent": self.intent.as_json(),
                "sentiment": self.sentiment.as_json(),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_artifact(cls, artifact: str) -> "IntentModel":
        """Rebuild a model from `to_artifact` text; refuse text of another format."""
        data = json.loads(artifact)
        if not isinstance(data, dict) or data.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"not a {ARTIFACT_FORMAT} artifact")
        if tuple(data["ngram_range"]) != NGRAM_RANGE:
            raise ValueError(f"the artifact uses n-grams {data['ngram_range']}, this code builds {list(NGRAM_RANGE)}")
        features = len(data["vocabulary"])
        return cls(
            vocabulary=data["vocabulary"],
            idf=_decode(data["idf"]),
            intent=_Head.from_json(data["intent"], features),
            sentiment=_Head.from_json(data["sentiment"], features),
        )
