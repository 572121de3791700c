"""Daytona connections: the ones admins add besides the configured default, their
secrets sealed at rest, and which one each person is using."""
