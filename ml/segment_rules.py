"""The "model score" segment rule, registered into the audience's rule registry at start.

{"task": "purchase_propensity", "measure": "probability", "op": "at_least", "value": 0.4} or
{"measure": "decile", "op": "at_most", "value": 2}. It reads the scores of the task's active
model version; customers without a score under it never match.
"""

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Q

from marketing.segments.registry import Facts, RuleError, RuleType, one_of, only_keys, rule_types
from ml.models import ModelStatus, Score

MEASURES = ("probability", "decile")
OPS = ("at_least", "at_most")


@rule_types.register("score")
class ScoreRule(RuleType):
    label = "Model score"
    example = {"task": "purchase_propensity", "measure": "probability", "op": "at_least", "value": 0.4}

    def clean(self, config: dict[str, Any]) -> dict[str, Any]:
        only_keys(config, {"task", "measure", "op", "value"})
        task = config.get("task", "purchase_propensity")
        if not isinstance(task, str) or not task:
            raise RuleError("task", f"{task!r} is not a task name such as purchase_propensity")
        measure = one_of(config, "measure", MEASURES)
        value = config.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RuleError("value", f"{value!r} is not a number")
        if measure == "probability" and not 0 <= value <= 1:
            raise RuleError("value", "a probability is between 0 and 1")
        if measure == "decile" and (value not in range(1, 11) or isinstance(value, float)):
            raise RuleError("value", "a decile is a whole number from 1 to 10")
        return {"task": task, "measure": measure, "op": one_of(config, "op", OPS), "value": value}

    def condition(self, config: dict[str, Any], now: datetime) -> Q:
        lookup = "gte" if config["op"] == "at_least" else "lte"
        scores = Score.objects.filter(
            customer_id=OuterRef("pk"),
            model_version__task=config["task"],
            model_version__status=ModelStatus.ACTIVE,
            **{f"{config['measure']}__{lookup}": config["value"]},
        )
        return Q(Exists(scores))

    def matches(self, config: dict[str, Any], facts: Facts, now: datetime) -> bool:
        score = facts.scores.get(config["task"])
        if score is None:
            return False
        value = score[0] if config["measure"] == "probability" else score[1]
        return value >= config["value"] if config["op"] == "at_least" else value <= config["value"]
