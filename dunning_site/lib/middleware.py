import zoneinfo

from django.utils import timezone


class UserTimeZoneMiddleware:
    """Dates on staff pages are in the viewer's own time zone (User.time_zone); customers' local
    times are shown beside them where they matter."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = getattr(request.user, "time_zone", None) if request.user.is_authenticated else None
        if zone:
            timezone.activate(zoneinfo.ZoneInfo(zone))
        else:
            timezone.deactivate()
        return self.get_response(request)
