"""RQ cron: the periodic work, run by `manage.py rqcron dunning_site.jobs` beside the workers.

Queue names: `default` for the engine, `messages` for deliveries (so a burst of reminders
never delays the tick).
"""

from rq import cron

from dunning_site.collections.jobs import tick
from dunning_site.notifications.jobs import sweep

cron.register(tick, "default", cron="* * * * *", job_timeout=600, result_ttl=3600)
cron.register(sweep, "messages", cron="*/5 * * * *", result_ttl=3600)
