from django.urls import path

from ml import api

app_name = "ml"

urlpatterns = [
    path("api/v1/customers/<str:external_id>/propensity", api.customer_propensity, name="customer-propensity"),
]
