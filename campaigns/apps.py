from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self) -> None:
        from anymail.signals import inbound, tracking

        from campaigns import checks  # noqa: F401 - registers the deployment checks
        from campaigns.webhooks import on_inbound_message, on_tracking_event

        tracking.connect(on_tracking_event, dispatch_uid="kairos.campaigns.esp_tracking")
        inbound.connect(on_inbound_message, dispatch_uid="kairos.campaigns.esp_inbound")
