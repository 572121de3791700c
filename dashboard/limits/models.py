"""Usage over time: what the organization and each member held against their quotas.

One row per scope (the organization, or one member by username) per sample, every
few minutes, kept for a bounded window (dashboard/limits/history.py prunes older rows).
A lease row lets one process of the dashboard sample a connection while the others
(other workers, other machines on the same database) stand by.
"""

from django.db import models


class UsageSample(models.Model):
    """Usage and quota at one moment; a quota of None means no limit."""

    connection = models.CharField(max_length=16)  # which Daytona: a hash of its API URL
    taken_at = models.DateTimeField()
    person = models.CharField(max_length=150, blank=True)  # "" for the organization
    sandboxes = models.PositiveIntegerField()
    cpu = models.FloatField()  # vCPU held by running sandboxes
    memory = models.FloatField()  # GiB held by running sandboxes
    disk = models.FloatField()  # GiB held by every sandbox that exists
    sandbox_quota = models.PositiveIntegerField(null=True)
    cpu_quota = models.FloatField(null=True)
    memory_quota = models.FloatField(null=True)
    disk_quota = models.FloatField(null=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "person", "taken_at"])]

    def __str__(self) -> str:
        return f"{self.person or 'organization'} at {self.taken_at:%Y-%m-%d %H:%M}"


class SamplerLease(models.Model):
    """Who samples a connection until when; another process takes over once it lapses."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=128)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder}"
