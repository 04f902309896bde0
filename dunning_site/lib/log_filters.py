"""Filters for the logging configuration (settings.LOGGING)."""

import logging

from django.core.exceptions import PermissionDenied


class PermissionDeniedWithoutTraceback(logging.Filter):
    """django.request logs every refused request with the PermissionDenied's traceback. A refusal
    is the permissions working, not a fault: the one-line warning (the status and the path) says
    all there is, and a traceback for each click of a role without the right would bury real
    errors. Other exceptions keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = None
            record.exc_text = None
        return True
