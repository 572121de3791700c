"""'Test connection': ask a Daytona two questions and say exactly what went wrong.

First GET /config (Daytona answers it without a key; the engine wants one, so
it is sent): whether the URL is reached
at all (DNS, TCP, TLS, time) and whether it is a Daytona API. Then a one-sandbox page of
the sandbox list with the secret, the call the dashboard makes most: 401 is a refused
key, 403 a wrong organization (or a key without the permission). A fresh client each
time: a probe must not leave a connection to an unsaved URL in a shared pool.
"""

import asyncio
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import httpx

SECONDS = 8.0
# In Daytona's /config (and the engine's): a JSON object with these is Daytona's.
_CONFIG_KEYS = ("defaultSnapshot", "maxAutoArchiveInterval")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problem: (
        str  # "", dns, tls, refused, timeout, unreachable, unauthorized, forbidden, not_daytona
    )
    message: str


def _fail(problem: str, message: str) -> Verdict:
    return Verdict(ok=False, problem=problem, message=message)


async def probe(
    url: str, headers: dict[str, str], *, secret: str = "", seconds: float = SECONDS
) -> Verdict:
    """What a Daytona at `url` (its API root, ending in /api) says to these headers."""
    verdict = await _probe(url.rstrip("/"), headers, seconds)
    if secret and secret in verdict.message:
        # Daytona's own words are quoted; a server echoing the key must not show it.
        verdict = Verdict(verdict.ok, verdict.problem, verdict.message.replace(secret, "[masked]"))
    return verdict


async def _probe(url: str, headers: dict[str, str], seconds: float) -> Verdict:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        return _fail("unreachable", f"The URL is not valid: {error}.")
    host = parsed.host
    unresolved = await _resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    if unresolved:
        return unresolved
    async with httpx.AsyncClient(follow_redirects=False) as http:
        try:
            signed = {**headers, "Accept": "application/json"}
            config = await http.get(url + "/config", headers=signed, timeout=seconds)
            if not (about := _is_daytona(config, url)).ok:
                return about
            answer = await http.get(
                url + "/sandbox",
                params={"limit": "1"},
                headers=signed,
                timeout=seconds,
            )
        except httpx.TimeoutException:
            return _fail("timeout", f"{host} did not answer within {seconds:g} seconds.")
        except httpx.TransportError as error:
            return _transport_failure(error, parsed)
    return _judge_signed_in(answer, headers, about.message)


async def _resolve(host: str, port: int) -> Verdict | None:
    if host.rstrip(".").lower().endswith(".invalid"):
        # RFC 6761: never resolves, and resolvers should say so at once; glibc asks the
        # DNS server anyway, so the answer is given here without asking anyone.
        return _fail("dns", f"DNS: the name {host} does not resolve (.invalid never does).")
    try:
        await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return _fail("dns", f"DNS: the name {host} does not resolve ({error.strerror}).")
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _transport_failure(error: httpx.TransportError, url: httpx.URL) -> Verdict:
    where = f"{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}"
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return _fail(
                "tls", f"TLS: the certificate of {where} is not trusted ({cause.verify_message})."
            )
        if isinstance(cause, ssl.SSLError):
            return _fail(
                "tls",
                f"TLS: the handshake with {where} failed ({cause.reason or cause}); "
                "is it an https:// URL for a port that speaks plain HTTP?",
            )
        if isinstance(cause, ConnectionRefusedError):
            return _fail("refused", f"Connection refused by {where}: nothing listens there.")
        if isinstance(cause, socket.gaierror):
            return _fail("dns", f"DNS: the name {url.host} does not resolve.")
    if url.scheme == "https" and isinstance(error, httpx.ConnectError):
        # The peer hung up during the handshake without a TLS alert.
        return _fail("tls", f"TLS: {where} closed the connection during the handshake.")
    return _fail("unreachable", f"{where} cannot be reached ({type(error).__name__}).")


def _is_daytona(response: httpx.Response, url: str) -> Verdict:
    """Whether GET /config answered as Daytona does; the message names its version."""
    kind = response.headers.get("content-type", "none").split(";")[0].strip() or "none"
    hint = " The URL should be Daytona's API root, ending in /api."
    if response.status_code in (401, 403) and _daytona_said(response):
        # A Daytona that guards /config (as the engine does) refuses in its JSON shape;
        # the signed-in call then says which refusal it is.
        return Verdict(True, "", "Daytona")
    if response.status_code >= 300:
        return _fail(
            "not_daytona",
            f"Not a Daytona API: {url}/config answered {response.status_code} "
            f"{response.reason_phrase} ({kind}).{hint}",
        )
    try:
        body = response.json()
    except ValueError:
        return _fail(
            "not_daytona", f"Not a Daytona API: {url}/config answered {kind}, not JSON.{hint}"
        )
    if not isinstance(body, dict) or not all(key in body for key in _CONFIG_KEYS):
        return _fail(
            "not_daytona",
            f"Not a Daytona API: {url}/config answered JSON without Daytona's settings "
            f"({', '.join(_CONFIG_KEYS)}).{hint}",
        )
    version = body.get("version")
    return Verdict(True, "", f"Daytona {version}" if isinstance(version, str) else "Daytona")


def _daytona_said(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f" Daytona said: {body['message'][:300]}"
    return ""


def _judge_signed_in(response: httpx.Response, headers: dict[str, str], daytona: str) -> Verdict:
    said = _daytona_said(response)
    if response.status_code == 401:
        return _fail(
            "unauthorized",
            f"401 Unauthorized: {daytona} refused the key or token "
            f"(wrong, expired or revoked).{said}",
        )
    if response.status_code == 403:
        organization = headers.get("X-Daytona-Organization-ID")
        why = (
            f"the organization id {organization} is wrong, or this account is not a member of it"
            if organization
            else "the key may not list sandboxes (its permissions), or its organization is off"
        )
        return _fail("forbidden", f"403 Forbidden: {why}.{said}")
    if response.is_error:
        return _fail(
            "unreachable",
            f"{daytona} answered {response.status_code} {response.reason_phrase} "
            f"to the sandbox list.{said}",
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return _fail("not_daytona", "Not a Daytona API: the sandbox list is not Daytona's shape.")
    return Verdict(True, "", f"Connected: {daytona} accepted the key and listed sandboxes.")
