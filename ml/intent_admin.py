"""Admin page of the message-intent model versions: their figures against the baselines, activation and rollback.

Registered from `ml.apps` so the models' own admin module stays as it is. Activation goes through
`activate_intent_version`, which refuses, with the figures, a version that does not beat both baselines.
"""

from django.contrib import admin, messages
from django.utils.html import format_html

from marketing.permissions import AdminActionPermissions
from ml.intent_registry import MESSAGE_INTENTS, activate_intent_version
from ml.models import IntentModelVersion
from ml.registry import ActivationRefused, roll_back


@admin.register(IntentModelVersion)
class IntentModelVersionAdmin(AdminActionPermissions, admin.ModelAdmin):
    list_display = [
        "__str__",
        "status",
        "cross_validated",
        "held_out",
        "majority",
        "keywords",
        "beats_baselines",
        "created_at",
    ]
    list_filter = ["status", "beats_baselines"]
    ordering = ["-version"]
    actions = ["activate", "roll_back_intents"]
    fields = ["version", "status", "activated_at", "beats_baselines", "params", "figures"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).filter(task=MESSAGE_INTENTS).defer("artifact")

    def has_add_permission(self, request) -> bool:
        return False  # versions come from train_intents

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def _figure(self, version, where: str, key: str):
        return (version.metrics.get(where) or {}).get(key)

    @admin.display(description="macro-F1 (cv)")
    def cross_validated(self, version):
        return self._figure(version, "cross_validated", "model")

    @admin.display(description="macro-F1 (held-out)")
    def held_out(self, version):
        return self._figure(version, "held_out", "model")

    @admin.display(description="majority (held-out)")
    def majority(self, version):
        return self._figure(version, "held_out", "majority")

    @admin.display(description="keywords (held-out)")
    def keywords(self, version):
        return self._figure(version, "held_out", "keyword")

    @admin.display(description="figures")
    def figures(self, version) -> str:
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', version.card or "—")

    @admin.action(description="Activate the selected version (it must beat both baselines)", permissions=["activate"])
    def activate(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = activate_intent_version(queryset.get())
        except ActivationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(request, f"{version} is active; new messages are read with it.")

    @admin.action(description="Roll back to the previously active version", permissions=["activate"])
    def roll_back_intents(self, request, queryset) -> None:
        try:
            version = roll_back(MESSAGE_INTENTS)
        except ActivationRefused as refusal:
            self.message_user(request, str(refusal), messages.ERROR)
            return
        self.message_user(request, f"Rolled back: {version} is active again.")
