from django import template

from dunning_site.lib.money import format_money

register = template.Library()


@register.filter
def money(minor: int | None, currency: str) -> str:
    """Minor units shown with their currency, always: €1,234.56, ¥1,200, KWD 1.234."""
    if minor is None:
        return ""
    return format_money(minor, currency)


@register.filter
def days_since(day, today) -> int:
    return max((today - day).days, 0)
