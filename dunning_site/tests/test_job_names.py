"""Jobs are enqueued by name where the jobs module sits above the code that enqueues them (it imports
those services: importing it back would make a cycle). A name that no longer names a job would only
fail in a worker; here it fails at once."""

import importlib
import re
from pathlib import Path

import dunning_site

JOB_NAME = re.compile(r'"(dunning_site\.[a-z_.]+\.jobs)\.([a-z_]+)"')


def test_every_job_named_in_the_code_is_a_function_of_its_jobs_module():
    root = Path(dunning_site.__file__).parent
    named = {
        match.groups()
        for path in root.rglob("*.py")
        if "tests" not in path.parts
        for match in JOB_NAME.finditer(path.read_text())
    }
    assert len(named) >= 8, named  # the delivery job, the tick, the billing and service-hook jobs
    for module, function in sorted(named):
        assert callable(getattr(importlib.import_module(module), function, None)), f"{module}.{function}"
