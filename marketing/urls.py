from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Kairos"
admin.site.site_title = "Kairos"
admin.site.index_title = "Marketing automation"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("", include("campaigns.urls")),
    # ESP webhooks (bounces, complaints), verified by django-anymail: /anymail/<esp>/tracking/
    path("anymail/", include("anymail.urls")),
]
