"""News that travels upward from notifications, which knows nothing of cases."""

from django.dispatch import Signal

message_status_changed = Signal()  # kwargs: message, previous_status, event (sent, deferred, edited…), user
