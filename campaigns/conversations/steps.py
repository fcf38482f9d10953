"""Steps for campaigns started by a customer's message: reply, hold promotional e-mail, suppress, flag for a person.

Each finds the message in the enrollment's trigger data (the `message_received` event names it) and
acts through the step's Effects, so a simulation runs them without replying to anyone.
"""

from campaigns.steps import StepError, StepResult, StepType, steps

MAX_HOLD_DAYS = 365


def message_id(context) -> int | None:
    """The id of the inbound message that started this enrollment, if a message did."""
    properties = (context.enrollment.trigger_data or {}).get("properties") or {}
    value = properties.get("message")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _no_message() -> StepResult:
    return StepResult("skipped: this enrollment was not started by a customer's message")


@steps.register("reply")
class Reply(StepType):
    label = "Reply to the customer's message with a template (never to auto-replies, bounces or ourselves)"
    example = {"template": "Order status reply"}

    def clean(self, config, step_keys):
        return steps.get("send_email").clean(config, step_keys)

    def run(self, context):
        inbound = message_id(context)
        if inbound is None:
            return _no_message()
        return StepResult(context.effects.send_reply(context, context.step.config["template"], inbound))


@steps.register("hold_promotions")
class HoldPromotions(StepType):
    label = "Hold promotional e-mail to the customer for some days"
    example = {"days": 14}

    def clean(self, config, step_keys):
        days = config.get("days")
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_HOLD_DAYS:
            raise StepError("days", f"must be a whole number of days from 1 to {MAX_HOLD_DAYS}")
        return {"days": days}

    def run(self, context):
        return StepResult(context.effects.hold_promotions(context, context.step.config["days"], message_id(context)))


@steps.register("flag_for_person")
class FlagForPerson(StepType):
    label = "Flag the customer's message for a person to handle"
    example = {"reason": "a complaint"}

    def clean(self, config, step_keys):
        reason = config.get("reason", "")
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 200:
            raise StepError("reason", "must be text of 1 to 200 characters, shown in the inbox")
        return {"reason": reason.strip()}

    def run(self, context):
        inbound = message_id(context)
        if inbound is None:
            return _no_message()
        return StepResult(context.effects.flag_message(context, inbound, context.step.config["reason"]))


@steps.register("suppress")
class Suppress(StepType):
    label = "Suppress the customer's address (an unsubscribe request)"
    example = {}

    def run(self, context):
        inbound = message_id(context)
        if inbound is None:
            return _no_message()
        return StepResult(context.effects.suppress_sender(context, inbound))
