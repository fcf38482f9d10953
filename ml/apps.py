from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ml"
    verbose_name = "Predictions"

    def ready(self) -> None:
        from marketing.openapi import register_api_path
        from ml.api import PATH, openapi_operations

        # marketing owns the API document but imports no other app: ml adds its path here.
        register_api_path(PATH, openapi_operations)
        # The message-intent versions' admin page lives in its own module.
        import ml.intent_admin  # noqa: F401
        import ml.recommend_admin  # noqa: F401
