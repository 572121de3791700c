"""A test client with Django's usual blocking API that is served through the ASGI
request path, as uvicorn serves Sandbar in production.

Django's `Client` goes through the WSGI handler, where middleware and async views
run in sync mode: the event-loop path (the middleware under ASGI, async views
rendering on the loop) would go untested, and a query made from the loop by
mistake would pass. Through this client it raises `SynchronousOnlyOperation`.
"""

import asyncio
import functools

from asgiref.sync import async_to_sync
from django.test import AsyncClient


def _blocking(name: str):
    method = getattr(AsyncClient, name)

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return async_to_sync(method)(self, *args, **kwargs)
        # Called from the loop: Django's own redirect following, which awaits it.
        return method(self, *args, **kwargs)

    return call


class ServedClient(AsyncClient):
    """`AsyncClient`, with each request method run to completion for the caller."""

    get = _blocking("get")
    post = _blocking("post")
    put = _blocking("put")
    patch = _blocking("patch")
    delete = _blocking("delete")
    head = _blocking("head")
    options = _blocking("options")
