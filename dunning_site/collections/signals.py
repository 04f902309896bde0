"""News the case core and the ladder send to the rooms above them (the Stripe side), so that the
dependency goes one way: the lower module defines the signal and sends it, the room above fills it in
with a receiver (connected in collections.receivers). The same pattern as notifications.signals."""

from django.dispatch import Signal

# The ladder's "retry payment" step is due on a case (kwargs: case, now), inside the tick's
# transaction. A receiver tries what it can and returns a list of lines, what was decided per
# invoice, for the timeline; without a receiver the step only records that it was performed.
payment_retry_step_due = Signal()

# A case's hold ended, by a person or by its end date (kwargs: case, now), inside the transaction
# that resumed it: what a hold stopped (card retries) is planned afresh, and a pending promise to pay
# is settled (collections.promises).
case_resumed = Signal()

# A case closed, paid in full or written off (kwargs: case, now), inside the transaction that closed
# it: a pending promise to pay is settled then (collections.promises).
case_closed = Signal()
