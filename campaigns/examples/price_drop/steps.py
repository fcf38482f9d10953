"""A step: add a tag to the customer's `attributes.tags` list, e.g. to keep them out of the next offer.

It acts only through `context.effects`, so a simulation runs it without changing anyone, and it
decides from the customer as the enrollment sees them, so running it twice tags once.
"""

import re
from typing import Any

from campaigns.steps import StepContext, StepError, StepResult, StepType, steps

TAG_ATTRIBUTE = "tags"
TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


@steps.register("tag_customer")
class TagCustomer(StepType):
    label = "Tag the customer (attributes.tags)"
    example = {"tag": "price-drop-offered"}

    def clean(self, config: dict[str, Any], step_keys: set[str]) -> dict[str, Any]:
        tag = config.get("tag")
        if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
            raise StepError(
                "tag", "must be 1 to 40 lower-case letters, digits, - or _, starting with a letter or digit"
            )
        return {"tag": tag}

    def run(self, context: StepContext) -> StepResult:
        tag = context.step.config["tag"]
        tags = (context.customer.get("attributes") or {}).get(TAG_ATTRIBUTE, [])
        if not isinstance(tags, list):
            return StepResult(f"not tagged: attributes.{TAG_ATTRIBUTE} is not a list")
        if tag in tags:
            return StepResult(f"already tagged {tag}")
        context.effects.update_customer(context, f"attributes.{TAG_ATTRIBUTE}", [*tags, tag])
        return StepResult(f"tagged {tag}")
