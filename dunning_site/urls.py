from functools import wraps

from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.urls import URLPattern, include, path
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

from dunning_site.accounts import views as account_views
from dunning_site.collections.roles import ADMIN

admin.site.site_header = "Dunning back-office"
admin.site.site_title = "Dunning"


def is_admin(user) -> bool:
    return user.is_active and (user.is_superuser or user.groups.filter(name=ADMIN).exists())


def admins_only(view):
    """The RQ dashboard empties queues and re-runs jobs: Admins only, not every staff member."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not is_admin(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def signed_in_admins_only(view):
    """RQ's statistics also answer a bearer token (RQ_API_TOKEN) without a session: a signed-in
    user must be an Admin, anyone else needs the token."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.user.is_authenticated and not is_admin(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _rq_patterns() -> list[URLPattern]:
    api = get_api_urlpatterns()
    for pattern in api:
        pattern.callback = signed_in_admins_only(pattern.callback)
    return api + get_admin_urlpatterns(view_wrapper=admins_only)


urlpatterns = [
    path("accounts/password_reset/", account_views.password_reset, name="password_reset"),
    path("accounts/", include("dunning_site.accounts.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("django-rq/", include((_rq_patterns(), "django_rq"))),
    path("", include("dunning_site.ops.urls")),
    path("", include("dunning_site.notifications.urls")),
    path("", include("dunning_site.collections.urls")),
    path("", include("dunning_site.portal.urls")),
]
