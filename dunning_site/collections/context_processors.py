from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from dunning_site.collections import selectors


def worklist_counts(request: HttpRequest) -> dict:
    """The navigation's counts; computed (one query) only when a page shows the navigation."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("collections.view_case"):
        return {}
    return {"worklist_counts": SimpleLazyObject(lambda: selectors.worklist_counts(user=user))}
