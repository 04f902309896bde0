"""The dashboard's charts as server-drawn SVG: no JavaScript, nothing from a CDN, nothing inline
the Content-Security-Policy would refuse.

Each chart is an <svg role="img"> named by its <title> and <desc> (aria-labelledby), and each bar
carries a <title> the browser shows as a tooltip. Colours and fonts come from CSS classes in
static/css/app.css (section "Dashboard"); the markup only has geometry. The page puts the same
numbers in a table beside every chart, so nobody depends on seeing the colours.
"""

import dataclasses
import math
from collections.abc import Sequence
from decimal import Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from dunning_site.collections.dashboard import AGING_BUCKETS
from dunning_site.lib.money import currency_exponent, format_money

WIDTH = 720
SERIES_CLASSES = 6  # .chart-series-0 … -5, then they repeat


def _number(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _svg(chart_id: str, title: str, description: str, height: float, body: list[str]) -> SafeString:
    head = format_html(
        '<svg class="chart" id="{id}" role="img" aria-labelledby="{id}-title {id}-desc" viewBox="0 0 {w} {h}"'
        ' width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>',
        id=chart_id,
        w=WIDTH,
        h=_number(height),
        title=title,
        desc=description,
    )
    return mark_safe(head + "".join(body) + "</svg>")  # every part was escaped by format_html


def _rect(x: float, y: float, width: float, height: float, css: str, tooltip: str) -> str:
    return format_html(
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        css,
        _number(x),
        _number(y),
        _number(max(width, 0)),
        _number(max(height, 0)),
        tooltip,
    )


def _text(x: float, y: float, text: str, css: str = "chart-label", anchor: str = "start") -> str:
    return format_html(
        '<text class="{}" x="{}" y="{}" text-anchor="{}">{}</text>', css, _number(x), _number(y), anchor, text
    )


def _percent(part: int, whole: int) -> str:
    return f"{Decimal(part) * 100 / Decimal(whole):.1f}%" if whole else "—"


# ---------------------------------------------------------------------------------------------
# Stacked shares: one bar per currency, split by age


@dataclasses.dataclass
class StackedRow:
    label: str  # the currency
    currency: str
    parts: Sequence[int]  # minor units, one per segment
    counts: Sequence[int]
    total: int


def stacked_shares(
    *, chart_id: str, title: str, description: str, segments: Sequence[str], rows: Sequence[StackedRow]
) -> SafeString:
    """Each currency's total as one bar split into its segments' shares (amounts of different
    currencies are never drawn on a common scale); the total is written at the bar's end."""
    left, bar_width, row_height, gap, legend_height = 64, 460, 30, 14, 34
    height = legend_height + len(rows) * (row_height + gap) + 8
    body: list[str] = []
    x = left
    for index, segment in enumerate(segments):  # the legend
        body.append(_rect(x, 8, 14, 14, f"chart-bucket-{index}", segment))
        body.append(_text(x + 20, 20, segment, "chart-legend"))
        x += 30 + 8 * len(segment)
    for row_index, row in enumerate(rows):
        y = legend_height + row_index * (row_height + gap)
        body.append(_text(left - 10, y + row_height / 2 + 5, row.label, "chart-label chart-strong", "end"))
        x = left
        for index, (segment, part, count) in enumerate(zip(segments, row.parts, row.counts, strict=True)):
            if not part:
                continue
            width = bar_width * part / row.total if row.total else 0
            tooltip = (
                f"{row.label}, {segment}: {format_money(part, row.currency)} "
                f"({count} invoice{'s' if count != 1 else ''}, {_percent(part, row.total)})"
            )
            body.append(_rect(x, y, width, row_height, f"chart-bucket-{index}", tooltip))
            x += width
        body.append(_text(left + bar_width + 10, y + row_height / 2 + 5, format_money(row.total, row.currency)))
    return _svg(chart_id, title, description, height, body)


# ---------------------------------------------------------------------------------------------
# Funnel


def funnel(
    *, chart_id: str, title: str, description: str, stages: Sequence[tuple[str, int]], outcome: tuple[str, int]
) -> SafeString:
    """Centred bars narrowing stage by stage (widths relative to the first stage), then the
    outcome (recovered) as a bar of its own colour."""
    label_width, bar_area, row_height, gap = 170, 400, 30, 10
    first = stages[0][1] if stages else 0
    rows = [*((label, count, "chart-stage") for label, count in stages), (*outcome, "chart-outcome")]
    height = len(rows) * (row_height + gap) + gap + 10
    body: list[str] = []
    for index, (label, count, css) in enumerate(rows):
        y = gap + index * (row_height + gap) + (10 if css == "chart-outcome" else 0)
        width = bar_area * count / first if first else 0
        x = label_width + (bar_area - width) / 2
        share = _percent(count, first)
        body.append(_text(label_width - 12, y + row_height / 2 + 5, label, "chart-label chart-strong", "end"))
        body.append(_rect(x, y, width, row_height, css, f"{label}: {count} case{'s' if count != 1 else ''} ({share})"))
        body.append(_text(label_width + bar_area + 12, y + row_height / 2 + 5, f"{count} · {share}"))
    return _svg(chart_id, title, description, height, body)


# ---------------------------------------------------------------------------------------------
# Columns: months or weeks along the bottom, one column per series in each


@dataclasses.dataclass
class Series:
    name: str
    values: Sequence[float | None]  # one per category; None: nothing to show there
    tooltips: Sequence[str]


def columns(
    *,
    chart_id: str,
    title: str,
    description: str,
    categories: Sequence[str],
    series: Sequence[Series],
    ticks: Sequence[tuple[float, str]],
    legend: bool = True,
) -> SafeString:
    """Grouped columns on a scale from 0 to the last tick, with horizontal grid lines at the ticks.
    Category labels thin out so that at most about twelve are written."""
    left, right, top, plot_height, bottom = 88, 16, 40 if legend and len(series) > 1 else 14, 200, 40
    plot_width = WIDTH - left - right
    height = top + plot_height + bottom
    top_value = ticks[-1][0] if ticks and ticks[-1][0] > 0 else 1
    body: list[str] = []
    if legend and len(series) > 1:
        x = left
        for index, one in enumerate(series):
            body.append(_rect(x, 10, 14, 14, f"chart-series-{index % SERIES_CLASSES}", one.name))
            body.append(_text(x + 20, 22, one.name, "chart-legend"))
            x += 40 + 8 * len(one.name)
    for value, label in ticks:
        y = top + plot_height - plot_height * value / top_value
        body.append(
            format_html(
                '<line class="chart-grid" x1="{}" x2="{}" y1="{}" y2="{}"></line>',
                left,
                WIDTH - right,
                _number(y),
                _number(y),
            )
        )
        body.append(_text(left - 8, y + 4, label, "chart-axis", "end"))
    slot = plot_width / max(len(categories), 1)
    every = max(1, math.ceil(len(categories) / 12))
    column_width = min(36.0, slot * 0.8 / max(len(series), 1))
    for index, category in enumerate(categories):
        group_left = left + index * slot + (slot - column_width * len(series)) / 2
        for series_index, one in enumerate(series):
            value = one.values[index]
            if value is None:
                continue
            column_height = plot_height * min(value, top_value) / top_value
            body.append(
                _rect(
                    group_left + series_index * column_width,
                    top + plot_height - column_height,
                    column_width - 2,
                    column_height,
                    f"chart-series-{series_index % SERIES_CLASSES}",
                    one.tooltips[index],
                )
            )
        if index % every == 0:
            body.append(_text(left + index * slot + slot / 2, top + plot_height + 18, category, "chart-axis", "middle"))
    body.append(
        format_html(
            '<line class="chart-baseline" x1="{}" x2="{}" y1="{}" y2="{}"></line>',
            left,
            WIDTH - right,
            top + plot_height,
            top + plot_height,
        )
    )
    return _svg(chart_id, title, description, height, body)


def money_ticks(largest: int, currency: str, count: int = 4) -> list[tuple[float, str]]:
    """Round steps in major units (¥20,000, €250.00…) from 0 to at least the largest amount."""
    exponent = currency_exponent(currency)
    largest_major = Decimal(largest).scaleb(-exponent)
    if largest_major <= 0:
        step = Decimal(1)
    else:
        rough = largest_major / count
        magnitude = Decimal(10) ** math.floor(math.log10(rough))
        step = next(m * magnitude for m in (1, 2, Decimal("2.5"), 5, 10) if m * magnitude >= rough)
        step = max(step, Decimal(1).scaleb(-exponent))  # never less than one cent (one yen…)
    ticks = []
    for index in range(count + 1):
        minor = int((step * index).scaleb(exponent))
        ticks.append((float(minor), format_money(minor, currency)))
        if minor >= largest:
            break
    return ticks


PERCENT_TICKS = [(0.0, "0%"), (25.0, "25%"), (50.0, "50%"), (75.0, "75%"), (100.0, "100%")]


# ---------------------------------------------------------------------------------------------
# The dashboard's four charts, from its figures


def receivables_chart(receivables) -> SafeString:
    return stacked_shares(
        chart_id="chart-aging",
        title="Overdue receivables by days overdue, per currency",
        description="Each currency's overdue total as one bar split by age; the table below has the amounts.",
        segments=[label for label, _fewest, _most in AGING_BUCKETS],
        rows=[
            StackedRow(
                label=row.currency, currency=row.currency, parts=row.buckets, counts=row.bucket_counts, total=row.amount
            )
            for row in receivables
        ],
    )


def funnel_chart(funnel_figures) -> SafeString:
    return funnel(
        chart_id="chart-funnel",
        title="Cases opened in the period, by the furthest stage they reached",
        description="Bar widths relative to the cases opened; the last bar counts the cases paid in full.",
        stages=funnel_figures.stages,
        outcome=("Recovered", funnel_figures.recovered),
    )


def cohort_chart(cohorts, *, months, currencies: Sequence[str]) -> SafeString:
    by_key = {(cohort.month, cohort.currency): cohort for cohort in cohorts}
    series = []
    for currency in currencies:
        values, tooltips = [], []
        for month in months:
            cohort = by_key.get((month, currency))
            rate = cohort.rate if cohort else None
            values.append(float(rate) if rate is not None else None)
            tooltips.append(
                f"{month:%B %Y}, {currency}: {rate}% recovered — {format_money(cohort.recovered, currency)} "
                f"of {format_money(cohort.entered, currency)} ({cohort.cases} case{'s' if cohort.cases != 1 else ''})"
                if cohort and rate is not None
                else ""
            )
        series.append(Series(name=currency, values=values, tooltips=tooltips))
    return columns(
        chart_id="chart-cohorts",
        title="Recovery rate per monthly cohort, per currency",
        description="For the cases opened each month, the share of the amount that entered dunning recovered so far.",
        categories=[f"{month:%b %Y}" for month in months],
        series=series,
        ticks=PERCENT_TICKS,
    )


def weekly_chart(weeks, *, mondays, currency: str) -> SafeString:
    by_monday = {week.monday: week for week in weeks if week.currency == currency}
    values, tooltips = [], []
    for monday in mondays:
        week = by_monday.get(monday)
        values.append(float(week.amount) if week else None)
        year, number, _day = monday.isocalendar()
        tooltips.append(
            f"Week {number} of {year} (from {monday.day} {monday:%b}): {format_money(week.amount, currency)} recovered"
            if week
            else ""
        )
    largest = max((week.amount for week in by_monday.values()), default=0)
    return columns(
        chart_id=f"chart-weekly-{currency.lower()}",
        title=f"Recovered per week in {currency}",
        description=f"Money recovered on dunning cases in {currency}, by ISO week (Monday to Sunday).",
        categories=[f"{monday.day} {monday:%b}" for monday in mondays],
        series=[Series(name=currency, values=values, tooltips=tooltips)],
        ticks=money_ticks(largest, currency),
        legend=False,
    )
