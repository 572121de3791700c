"""Saved views: a person's named filters and sort for the sandboxes list.

Only the query string is kept; it is checked again by the list's filter form each
time it is applied, so a view saved under older rules says what no longer holds.
"""

from django.conf import settings
from django.db import models

NAME_MAX = 40
QUERY_MAX = 2000
# Enough for every filter a person uses often; the quick links stay one short row.
VIEWS_PER_PERSON = 20


class SavedView(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=NAME_MAX)
    query = models.CharField(max_length=QUERY_MAX)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="saved_view_name_per_owner")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.owner_id})"
