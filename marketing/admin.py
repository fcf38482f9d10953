import json
from decimal import Decimal

from axes import admin as axes_admin
from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import PeriodicTask

from marketing.consent import record_consent_changes
from marketing.models import ApiKey, Customer, Event, Order, OrderLine, Product, Suppression
from marketing.permissions import ERASE_PERMISSION
from marketing.privacy import erase_customer, export_customer
from marketing.suppression import email_hash


class SuppressedFilter(admin.SimpleListFilter):
    title = "suppression"
    parameter_name = "suppressed"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("yes", "Suppressed"), ("no", "Not suppressed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.suppressed()
        if self.value() == "no":
            return queryset.exclude(Exists(Suppression.objects.filter(email_hash=OuterRef("email_hash"))))
        return queryset


class OrderInline(admin.TabularInline):
    model = Order
    fields = ["external_id", "placed_at", "total", "currency", "status"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    show_change_link = True
    ordering = ["-placed_at"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "email", "first_name", "last_name", "country", "consent_state", "created_at"]
    list_filter = ["consent_state", SuppressedFilter, "country", "locale", "created_at"]
    search_fields = ["external_id", "email", "first_name", "last_name", "city"]
    readonly_fields = ["email_hash", "created_at", "updated_at", "order_count", "revenue"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [OrderInline]
    fieldsets = [
        (None, {"fields": ["external_id", "email", "first_name", "last_name"]}),
        ("Place and language", {"fields": ["locale", "timezone", "country", "city"]}),
        ("Sensitive (optional)", {"fields": ["birth_date", "gender"], "classes": ["collapse"]}),
        ("Consent", {"fields": ["consent_state", "consent_source", "consent_at"]}),
        ("Custom attributes", {"fields": ["attributes"]}),
        ("Computed", {"fields": ["order_count", "revenue", "email_hash", "created_at", "updated_at"]}),
    ]

    actions = ["export_data", "erase_data"]

    @admin.display(description="orders")
    def order_count(self, customer: Customer) -> int:
        return customer.orders.count()

    def save_model(self, request: HttpRequest, obj: Customer, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if "consent_state" in form.changed_data:
            record_consent_changes([obj.pk], obj.consent_state, obj.consent_source or f"admin {request.user.get_username()}", timezone.now())

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(ERASE_PERMISSION)

    @admin.action(description="Export all their data as JSON (a privacy request)", permissions=["view"])
    def export_data(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        by = f"admin {request.user.get_username()}"
        data = {customer.external_id: export_customer(customer.external_id, requested_by=by) for customer in queryset}
        return HttpResponse(
            json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True),
            content_type="application/json; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="customer-data.json"', "Cache-Control": "no-store"},
        )

    @admin.action(description="Erase their personal data (a privacy request; cannot be undone)", permissions=["erase"])
    def erase_data(self, request: HttpRequest, queryset: QuerySet) -> None:
        by = f"admin {request.user.get_username()}"
        erased = 0
        for external_id, pk in list(queryset.values_list("external_id", "pk")):
            erase_customer(external_id, requested_by=by)
            self.log_change(request, Customer.objects.get(pk=pk), "Erased on request")
            erased += 1
        self.message_user(request, f"Erased the personal data of {erased} customer(s); their addresses stay suppressed.")

    @admin.display(description="revenue")
    def revenue(self, customer: Customer) -> str:
        # SQLite sums decimals as floats; show cents either way.
        total = customer.orders.aggregate(total=Sum("total"))["total"] or 0
        return f"{Decimal(total):.2f}"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "category", "price", "currency", "in_stock"]
    list_filter = ["in_stock", "category", "currency"]
    search_fields = ["sku", "name", "category", "description"]
    readonly_fields = ["created_at", "updated_at"]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    autocomplete_fields = ["product"]
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["external_id", "customer", "placed_at", "total", "currency", "status", "line_count"]
    list_filter = ["status", "currency", "placed_at"]
    search_fields = ["external_id", "customer__external_id", "customer__email"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "placed_at"
    show_full_result_count = False
    inlines = [OrderLineInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(line_count=Count("lines"))

    @admin.display(description="lines", ordering="line_count")
    def line_count(self, order: Order) -> int:
        return order.line_count


@admin.register(OrderLine)
class OrderLineAdmin(admin.ModelAdmin):
    list_display = ["order", "product", "quantity", "unit_price"]
    list_filter = ["product__category"]
    search_fields = ["order__external_id", "product__sku", "product__name"]
    list_select_related = ["order", "product"]
    raw_id_fields = ["order", "product"]
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "customer", "occurred_at"]
    list_filter = ["name", "occurred_at"]
    search_fields = ["name", "external_id", "customer__external_id", "customer__email"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    readonly_fields = ["created_at"]
    date_hierarchy = "occurred_at"
    show_full_result_count = False


class SuppressionForm(forms.ModelForm):
    email = forms.EmailField(help_text="Stored only as a keyed hash; it cannot be read back.")

    class Meta:
        model = Suppression
        fields = ["reason"]

    def clean_email(self) -> str:
        address = self.cleaned_data["email"]
        if Suppression.objects.filter(email_hash=email_hash(address)).exists():
            raise forms.ValidationError("This address is already suppressed.")
        return address

    def save(self, commit: bool = True) -> Suppression:
        self.instance.email_hash = email_hash(self.cleaned_data["email"])
        return super().save(commit)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Staff can add an address (it is hashed on save) but never read one back."""

    form = SuppressionForm
    list_display = ["email_hash", "reason", "created_at"]
    list_filter = ["reason", "created_at"]
    search_fields = ["email_hash"]

    def has_change_permission(self, request: HttpRequest, obj: Suppression | None = None) -> bool:
        return False

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        # Staff search by address; only its hash is stored, so hash the term before looking.
        if "@" in search_term:
            return queryset.filter(email_hash=email_hash(search_term)), False
        return super().get_search_results(request, queryset, search_term)


class RevokedFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "revoked"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("no", "Active"), ("yes", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(revoked_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(revoked_at__isnull=True)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys for the events API: the full key is shown once, on creation; only its hash is stored."""

    list_display = ["prefix", "name", "created_at", "last_used_at", "revoked"]
    list_filter = [RevokedFilter, "created_at"]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    @admin.display(description="revoked", boolean=True, ordering="revoked_at")
    def revoked(self, api_key: ApiKey) -> bool:
        return api_key.is_revoked

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        raw_key = None if change else obj.assign_new_key()
        super().save_model(request, obj, form, change)
        if raw_key:
            # Held on this request only: a message would carry it in a cookie or the session.
            request.kairos_new_api_key = raw_key

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue=None):
        """Show the new key once, on this response's page; it is never stored, in a cookie or anywhere else."""
        raw_key = getattr(request, "kairos_new_api_key", None)
        if raw_key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": f"API key for {obj.name}",
            "opts": self.model._meta,
            "original": obj,
            "raw_key": raw_key,
        }
        response = TemplateResponse(request, "admin/marketing/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        live = list(queryset.filter(revoked_at__isnull=True))
        for api_key in live:
            self.log_change(request, api_key, "Revoked")
        revoked = queryset.filter(pk__in=[api_key.pk for api_key in live]).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {revoked} API key{'s' if revoked != 1 else ''}.", messages.SUCCESS)




# Beat's own admin offers "run now" and "enable" to anyone who can see the list; here each needs
# the change permission on periodic tasks, like the form that edits them.

admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin):
    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request, queryset):
        return super().enable_tasks(request, queryset)

    @admin.action(description="Disable selected tasks", permissions=["change"])
    def disable_tasks(self, request, queryset):
        return super().disable_tasks(request, queryset)

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request, queryset):
        return super().toggle_tasks(request, queryset)

    @admin.action(description="Run selected tasks", permissions=["change"])
    def run_tasks(self, request, queryset):
        return super().run_tasks(request, queryset)


# django-axes' cleanup action declares no permission: here it needs the right to delete attempts.
admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request, queryset):
        return super().cleanup_expired_attempts(request, queryset)


from marketing.segments import admin as segment_admin  # noqa: E402,F401
