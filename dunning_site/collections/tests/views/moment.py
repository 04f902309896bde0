"""The finance UI tests happen on a Monday morning: 16 March 2026, 10:00 UTC."""

import datetime as dt

NOW = dt.datetime(2026, 3, 16, 10, 0, tzinfo=dt.UTC)
