"""News that travels upward from accounts, which knows nothing of cases.

`invoice_balance_changed` is sent inside the writing transaction by every service that changes
an invoice's amount paid or status, so collections can reconcile the case atomically with it.
"""

from django.dispatch import Signal

invoice_balance_changed = (
    Signal()
)  # kwargs: invoice, actor (a User or None), at (when it happened, or None: now), payment (when one caused it)
