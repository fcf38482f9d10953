from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from campaigns.esp import esp_urlpatterns
from marketing import api

admin.site.site_header = "Kairos"
admin.site.site_title = "Kairos"
admin.site.index_title = "Marketing automation"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # The shops' API: an API key in a header, no cookies, so no CSRF token (see marketing/api.py).
    path("api/v1/events", api.ingest_events, name="api-events"),
    path("api/v1/messages", api.ingest_messages, name="api-messages"),
    path("api/v1/openapi.json", api.openapi, name="api-openapi"),
    # Privacy requests from the shop's own systems: all of a customer's data, or its erasure.
    path("api/v1/customers/<path:external_id>/data", api.customer_data, name="api-customer-data"),
    path("api/v1/customers/<path:external_id>/erase", api.erase_customer_data, name="api-customer-erase"),
    path("", include("campaigns.urls")),
    path("", include("ml.urls")),
    # The configured ESP's webhooks only (bounces, complaints, inbound mail): /anymail/<esp>/tracking/,
    # each refused without ANYMAIL_WEBHOOK_SECRET (campaigns/esp.py).
    path("anymail/", include((esp_urlpatterns(settings.ESP_NAME), "anymail"))),
]
