from django.urls import path

from dunning_site.ops import views

app_name = "ops"

urlpatterns = [
    path("health/", views.health, name="health"),
]
