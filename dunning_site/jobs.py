"""RQ cron: the periodic work, run by `manage.py rqcron dunning_site.jobs` beside the workers.

Queue names: `default` for the engine, `messages` for deliveries (so a burst of reminders
never delays the tick).
"""

from rq import cron

from dunning_site.collections.jobs import predunning_run, service_hooks_sweep, tick
from dunning_site.notifications.jobs import sweep

cron.register(tick, "default", cron="* * * * *", job_timeout=600, result_ttl=3600)
cron.register(sweep, "messages", cron="*/5 * * * *", result_ttl=3600)
cron.register(service_hooks_sweep, "default", cron="*/5 * * * *", result_ttl=3600)
# Once a day; the contact rules move each warning into the customer's own hours.
cron.register(predunning_run, "default", cron="0 7 * * *", job_timeout=1800, result_ttl=86400)
