from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from anymail.signals import inbound, tracking
        from django.utils.module_loading import autodiscover_modules

        from campaigns import checks  # noqa: F401 - registers the deployment checks
        from campaigns.conversations.processing import hand_messages_to_conversations
        from campaigns.engine import hand_events_to_engine
        from campaigns.webhooks import on_inbound_message, on_tracking_event
        from marketing.events import register_event_listener, register_message_listener

        # Built-in trigger and step types, then any other app's own triggers.py and steps.py.
        autodiscover_modules("triggers", "steps")
        # The worked example of docs/extending.md, shipped and registered like any other app's modules.
        # The steps of conversation workflows: reply, hold promotions, suppress, flag for a person.
        import campaigns.conversations.steps  # noqa: F401
        import campaigns.examples.price_drop.steps  # noqa: F401
        import campaigns.examples.price_drop.triggers  # noqa: F401

        register_event_listener(hand_events_to_engine)
        register_message_listener(hand_messages_to_conversations)

        tracking.connect(on_tracking_event, dispatch_uid="kairos.campaigns.esp_tracking")
        inbound.connect(on_inbound_message, dispatch_uid="kairos.campaigns.esp_inbound")
