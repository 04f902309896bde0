"""The project's settings with EMAIL_TIMEOUT removed, so Django's own default (None: wait for ever)
applies, as in a settings module written before the setting existed."""

from dunning_site.settings import *  # noqa: F403

del EMAIL_TIMEOUT  # noqa: F821
