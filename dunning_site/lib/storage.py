"""Where files that must never be public are kept: under PRIVATE_MEDIA_ROOT, outside MEDIA_ROOT, with no
URL of their own (a view that checks permissions streams them)."""

import os

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible


@deconstructible
class PrivateStorage(FileSystemStorage):
    """Reads PRIVATE_MEDIA_ROOT at each use, so a changed setting (a test's, a deploy's) is followed."""

    @property
    def base_location(self) -> str:
        return str(settings.PRIVATE_MEDIA_ROOT)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    @property
    def base_url(self) -> None:
        return None
