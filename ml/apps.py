from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ml"
    verbose_name = "Predictions"

    def ready(self) -> None:
        # The message-intent versions' admin page lives in its own module.
        import ml.intent_admin  # noqa: F401
