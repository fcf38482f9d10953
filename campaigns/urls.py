from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("t/c/<str:token>/", views.click, name="click"),
    path("t/o/<str:token>.gif", views.open_pixel, name="open"),
    path("u/<str:token>/", views.unsubscribe_page, name="unsubscribe"),
]
