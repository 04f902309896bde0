"""The brand customers see on their emails and pages, from settings (BRAND_*, README's configuration
table): a name, a logo, two colours and whom to ask for help."""

from email.utils import parseaddr

from django.conf import settings


def brand() -> dict:
    """Plain values for a template. The support address is the sender's unless set apart."""
    return {
        "name": settings.BRAND_NAME,
        "logo_url": settings.BRAND_LOGO_URL,
        "primary_colour": settings.BRAND_PRIMARY_COLOUR,
        "text_on_primary_colour": settings.BRAND_TEXT_ON_PRIMARY_COLOUR,
        "support_email": settings.BRAND_SUPPORT_EMAIL or parseaddr(settings.DEFAULT_FROM_EMAIL)[1],
        "support_phone": settings.BRAND_SUPPORT_PHONE,
        "support_url": settings.BRAND_SUPPORT_URL,
    }
