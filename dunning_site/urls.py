from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Dunning back-office"
admin.site.site_title = "Dunning"

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    path("", include("dunning_site.notifications.urls")),
    path("", include("dunning_site.collections.urls")),
]
