from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Dunning back-office"
admin.site.site_title = "Dunning"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("django-rq/", include("django_rq.urls")),
    path("", include("dunning_site.notifications.urls")),
    path("", include("dunning_site.collections.urls")),
]
