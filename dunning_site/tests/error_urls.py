"""The project's URLs and two that fail on purpose, for the error page tests: a refusal anyone
meets (signed in or not) and an unexpected error."""

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import path

from dunning_site.urls import urlpatterns as project_urlpatterns


def refused(request: HttpRequest) -> HttpResponse:
    raise PermissionDenied


def broken(request: HttpRequest) -> HttpResponse:
    raise ValueError("an unexpected error")


urlpatterns = [path("refused/", refused), path("broken/", broken), *project_urlpatterns]
