"""A simulator of failed subscription payments through the real engine (make simulate).

A synthetic book (book.py: behaviours, true time zones across both hemispheres' DST changes) is
played twice: through the real engine with a moved clock, a local Stripe and real signed webhooks
(engine.py), and through a fixed schedule (baseline.py). What actually happened — messages sent,
charges Stripe saw — is checked against the lines a collections team must never cross (report.py).
"""

import datetime as dt


def simulate(*, customers: int, seed: int, days: int = 45, step_minutes: int = 15, progress: bool = False) -> dict:
    """Run both and return the result (needs Django set up, an empty database and Redis)."""
    from bench.simulate.baseline import baseline_run
    from bench.simulate.book import START, build_book
    from bench.simulate.engine import engine_run
    from bench.simulate.report import summary

    book = build_book(customers=customers, seed=seed)
    until = START + dt.timedelta(days=days)
    engine = engine_run(
        book, seed=seed, start=START, until=until, step=dt.timedelta(minutes=step_minutes), progress=progress
    )
    baseline = summary(baseline_run(book, seed=seed, until=until))
    result = summary(engine.states)
    return {
        "customers": customers,
        "seed": seed,
        "days": days,
        "recovered_share": result["recovered_share"],
        "baseline_recovered_share": baseline["recovered_share"],
        "ratio": round(result["recovered_share"] / baseline["recovered_share"], 3)
        if baseline["recovered_share"]
        else None,
        "recovered_by_behaviour": result["recovered_by_behaviour"],
        "baseline_recovered_by_behaviour": baseline["recovered_by_behaviour"],
        "baseline_violations": baseline["violations"],
        "baseline_contacts": baseline["contacts"],
        "baseline_charges": baseline["charges"],
        "webhooks": engine.webhooks,
        "engine_errors": engine.engine_errors,
        "failed_jobs": engine.failed_jobs,
        "runtime_seconds": engine.runtime_seconds,
        "violations": result["violations"],
        "contacts": result["contacts"],
        "charges": result["charges"],
    }
