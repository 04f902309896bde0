"""RQ jobs: ids in, one service call."""

import dataclasses

from dunning_site.collections import services


def tick() -> dict:
    return dataclasses.asdict(services.tick())
