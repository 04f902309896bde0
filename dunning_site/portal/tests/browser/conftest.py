"""The portal's browser tests share the finance UI's: Debian's Chromium, a screenshot per step."""

from dunning_site.collections.tests.browser.conftest import browser_type_launch_args, clock, screenshot  # noqa: F401
