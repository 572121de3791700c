"""Sandbar's embedded engine: a Daytona-compatible API on local bubblewrap sandboxes.

It is a separate server process and imports nothing from the rest of ``dashboard``;
the dashboard reaches it only over HTTP and WebSocket, exactly like Daytona Cloud.
"""
