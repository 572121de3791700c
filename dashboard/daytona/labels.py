"""Names of the labels Sandbar writes on Daytona sandboxes.

They live beside the client, not in a Django app, so the client and every app above
it can read them without the client knowing any app.
"""

# Daytona has no notion of Sandbar's people: a sandbox's owner is this label.
OWNER_LABEL = "sandbar.owner"
