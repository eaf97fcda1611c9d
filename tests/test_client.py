"""The shared client and ``Fetcher``: guarded redirects, caps, status mapping, errors.

No real network: requests go to an ``httpx.MockTransport`` and names resolve through
a fake resolver.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any

import httpx
import pytest

from server import __version__
from server.federation.client import (
    ACTIVITY_ACCEPT,
    POST_RESPONSE_CAP,
    USER_AGENT,
    Fetcher,
    FetchError,
    FetchFailed,
    FetchGone,
    FetchNotFound,
    FetchRefused,
    FetchTooLarge,
    make_http_client,
)
from server.federation.urls import UrlGuard

PUBLIC_HOSTS = {
    "remote.example": ["93.184.216.34"],
    "other.example": ["93.184.216.35"],
}
PRIVATE_HOSTS = {"intranet.example": ["10.0.0.5"], "localhost": ["127.0.0.1"]}

Handler = Callable[[httpx.Request], httpx.Response]


async def fake_resolver(host: str, port: int) -> list[str]:
    table = {**PUBLIC_HOSTS, **PRIVATE_HOSTS}
    if host not in table:
        raise OSError("no such host")
    return table[host]


class Recorder:
    """A MockTransport handler that records requests and answers from a function."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    @property
    def urls(self) -> list[str]:
        return [str(request.url) for request in self.requests]


def make_fetcher(answer: Handler, **kwargs: Any) -> tuple[Fetcher, Recorder]:
    recorder = Recorder(answer)
    transport = httpx.MockTransport(recorder)
    http = make_http_client(transport=transport)
    guard = UrlGuard(allow_private=False, resolver=fake_resolver)
    return Fetcher(http, guard, transport=transport, **kwargs), recorder


def json_response(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=data, headers={"Content-Type": "application/activity+json"})


class HeaderAuth(httpx.Auth):
    """Stands in for HTTP signatures: marks each request it signs."""

    def __init__(self, value: str = "signed") -> None:
        self.value = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request

    def sign(self, request: httpx.Request) -> None:  # what Fetcher.post calls, as on HttpSignatureAuth
        request.headers["Signature"] = self.value


ACTOR = {"id": "https://remote.example/users/a", "type": "Person"}


# make_http_client


@pytest.mark.asyncio
async def test_client_defaults() -> None:
    recorder = Recorder(lambda request: httpx.Response(302, headers={"Location": "https://other.example/"}))
    async with make_http_client(transport=httpx.MockTransport(recorder), timeout=10.0) as http:
        response = await http.get("https://remote.example/")
        assert http.follow_redirects is False
        assert http.timeout.connect == 5.0
        assert http.timeout.read == 10.0
        assert http.trust_env is False
    # httpx did not follow the redirect by itself.
    assert response.status_code == 302
    assert recorder.urls == ["https://remote.example/"]
    assert recorder.requests[0].headers["User-Agent"] == USER_AGENT


def test_user_agent_names_version() -> None:
    assert f"Kith/{__version__} (+https://github.com/kith)" == USER_AGENT


# get_json


@pytest.mark.asyncio
async def test_get_json_ok_sends_accept_and_user_agent() -> None:
    fetcher, recorder = make_fetcher(lambda request: json_response(ACTOR))
    assert await fetcher.get_json("https://remote.example/users/a") == ACTOR
    request = recorder.requests[0]
    assert request.method == "GET"
    assert request.headers["Accept"] == ACTIVITY_ACCEPT
    assert request.headers["User-Agent"] == USER_AGENT
    assert "Signature" not in request.headers


@pytest.mark.asyncio
async def test_get_json_custom_accept() -> None:
    fetcher, recorder = make_fetcher(lambda request: json_response({"subject": "acct:a@remote.example"}))
    await fetcher.get_json("https://remote.example/.well-known/webfinger", accept="application/jrd+json")
    assert recorder.requests[0].headers["Accept"] == "application/jrd+json"


@pytest.mark.asyncio
async def test_get_json_refuses_private_first_url_without_sending() -> None:
    fetcher, recorder = make_fetcher(lambda request: json_response(ACTOR))
    with pytest.raises(FetchRefused) as info:
        await fetcher.get_json("https://intranet.example/users/a")
    assert info.value.reason == "resolves to a private address"
    assert info.value.status is None
    assert recorder.requests == []


@pytest.mark.asyncio
async def test_redirect_to_private_host_refused_at_second_hop() -> None:
    fetcher, recorder = make_fetcher(
        lambda request: httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    )
    with pytest.raises(FetchRefused) as info:
        await fetcher.get_json("https://remote.example/users/a")
    assert info.value.url == "http://169.254.169.254/latest/meta-data/"
    assert recorder.urls == ["https://remote.example/users/a"]


@pytest.mark.asyncio
async def test_redirect_to_privately_resolving_name_refused() -> None:
    fetcher, recorder = make_fetcher(
        lambda request: httpx.Response(301, headers={"Location": "https://intranet.example/admin"})
    )
    with pytest.raises(FetchRefused):
        await fetcher.get_json("https://remote.example/users/a")
    assert len(recorder.requests) == 1


@pytest.mark.asyncio
async def test_redirect_to_public_host_followed() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "remote.example":
            return httpx.Response(301, headers={"Location": "https://other.example/actor"})
        return json_response({"id": "https://other.example/actor", "type": "Group"})

    fetcher, recorder = make_fetcher(answer)
    fetched = await fetcher.fetch_json("https://remote.example/users/a")
    assert fetched.data["type"] == "Group"
    assert fetched.url == "https://other.example/actor"
    assert recorder.urls == ["https://remote.example/users/a", "https://other.example/actor"]
    # Each hop is a fresh request with our headers.
    assert recorder.requests[1].headers["Accept"] == ACTIVITY_ACCEPT


@pytest.mark.asyncio
async def test_relative_redirect_resolved_against_current_url() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/users/a":
            return httpx.Response(308, headers={"Location": "/u/a?x=1"})
        return json_response(ACTOR)

    fetcher, recorder = make_fetcher(answer)
    assert await fetcher.get_json("https://remote.example/users/a") == ACTOR
    assert recorder.urls[1] == "https://remote.example/u/a?x=1"


@pytest.mark.asyncio
async def test_redirect_loop_fails() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        target = "/b" if request.url.path == "/a" else "/a"
        return httpx.Response(302, headers={"Location": target})

    fetcher, recorder = make_fetcher(answer, max_redirects=5)
    with pytest.raises(FetchFailed) as info:
        await fetcher.get_json("https://remote.example/a")
    assert info.value.reason == "redirect loop"
    assert recorder.urls == ["https://remote.example/a", "https://remote.example/b"]


@pytest.mark.asyncio
async def test_too_many_redirects_fails() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        n = int(request.url.path.strip("/"))
        return httpx.Response(302, headers={"Location": f"/{n + 1}"})

    fetcher, recorder = make_fetcher(answer, max_redirects=3)
    with pytest.raises(FetchFailed) as info:
        await fetcher.get_json("https://remote.example/0")
    assert info.value.reason == "too many redirects"
    assert len(recorder.requests) == 4  # the first request plus three redirects


@pytest.mark.asyncio
async def test_redirect_without_location_fails() -> None:
    fetcher, _ = make_fetcher(lambda request: httpx.Response(302))
    with pytest.raises(FetchFailed) as info:
        await fetcher.get_json("https://remote.example/a")
    assert info.value.status == 302


@pytest.mark.asyncio
async def test_body_over_cap_with_content_length() -> None:
    body = json.dumps({"padding": "x" * 2000}).encode()
    fetcher, _ = make_fetcher(
        lambda request: httpx.Response(200, content=body, headers={"Content-Type": "application/json"}),
        max_bytes=1000,
    )
    with pytest.raises(FetchTooLarge) as info:
        await fetcher.get_json("https://remote.example/big")
    assert info.value.status == 200


@pytest.mark.asyncio
async def test_content_length_over_cap_refused_before_reading() -> None:
    pulled: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        pulled.append(1)
        yield b"{}"

    fetcher, _ = make_fetcher(
        lambda request: httpx.Response(200, content=body(), headers={"Content-Length": "5000000"}),
        max_bytes=1000,
    )
    with pytest.raises(FetchTooLarge):
        await fetcher.get_json("https://remote.example/big")
    assert pulled == []


@pytest.mark.asyncio
async def test_chunked_body_over_cap_stops_reading() -> None:
    produced: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        while True:
            produced.append(1)
            yield b"x" * 256

    def answer(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, content=endless())
        assert "Content-Length" not in response.headers
        return response

    fetcher, _ = make_fetcher(answer, max_bytes=1000)
    with pytest.raises(FetchTooLarge):
        await fetcher.get_json("https://remote.example/endless")
    # It stopped just past the cap instead of reading forever.
    assert 3 <= len(produced) <= 5


@pytest.mark.asyncio
async def test_body_exactly_at_cap_is_fine() -> None:
    body = json.dumps({"p": "x" * 100}).encode()
    fetcher, _ = make_fetcher(lambda request: httpx.Response(200, content=body), max_bytes=len(body))
    assert await fetcher.get_json("https://remote.example/x") == {"p": "x" * 100}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "error"),
    [(404, FetchNotFound), (410, FetchGone), (500, FetchFailed), (401, FetchFailed), (204, FetchFailed)],
)
async def test_status_mapping(status: int, error: type[FetchError]) -> None:
    fetcher, _ = make_fetcher(lambda request: httpx.Response(status, text="nope"))
    with pytest.raises(error) as info:
        await fetcher.get_json("https://remote.example/users/a")
    assert type(info.value) is error
    assert info.value.status == status
    assert info.value.url == "https://remote.example/users/a"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"<html>hi</html>", "invalid JSON"), (b"[1, 2]", "not a JSON object"), (b'"x"', "not a JSON object")],
)
async def test_bad_json_fails(body: bytes, reason: str) -> None:
    fetcher, _ = make_fetcher(lambda request: httpx.Response(200, content=body))
    with pytest.raises(FetchFailed) as info:
        await fetcher.get_json("https://remote.example/users/a")
    assert info.value.reason == reason


@pytest.mark.asyncio
async def test_timeout_fails() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    fetcher, _ = make_fetcher(answer)
    with pytest.raises(FetchFailed) as info:
        await fetcher.get_json("https://remote.example/users/a")
    assert info.value.reason == "timed out"
    assert info.value.status is None


@pytest.mark.asyncio
async def test_connect_error_fails() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    fetcher, _ = make_fetcher(answer)
    with pytest.raises(FetchFailed, match="network error"):
        await fetcher.get_json("https://remote.example/users/a")


@pytest.mark.asyncio
async def test_auth_applied_to_every_hop() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Signature") != "instance-actor":
            return httpx.Response(401)
        if request.url.path == "/users/a":
            return httpx.Response(302, headers={"Location": "/users/b"})
        return json_response(ACTOR)

    fetcher, recorder = make_fetcher(answer, auth=HeaderAuth("instance-actor"))
    assert await fetcher.get_json("https://remote.example/users/a") == ACTOR
    assert [r.headers["Signature"] for r in recorder.requests] == ["instance-actor", "instance-actor"]


# post


@pytest.mark.asyncio
async def test_post_returns_status_and_sends_signed_body() -> None:
    fetcher, recorder = make_fetcher(lambda request: httpx.Response(202, headers={"X-Request-Id": "abc"}))
    body = json.dumps({"type": "Follow"}).encode()
    response = await fetcher.post("https://remote.example/inbox", body, auth=HeaderAuth())
    assert response.status_code == 202
    assert response.headers["X-Request-Id"] == "abc"
    request = recorder.requests[0]
    assert request.method == "POST"
    assert request.content == body
    assert request.headers["Content-Type"] == "application/activity+json"
    assert request.headers["Signature"] == "signed"
    assert request.headers["User-Agent"] == USER_AGENT


@pytest.mark.asyncio
async def test_post_custom_content_type() -> None:
    fetcher, recorder = make_fetcher(lambda request: httpx.Response(200))
    await fetcher.post("https://remote.example/inbox", b"{}", auth=HeaderAuth(), content_type="application/json")
    assert recorder.requests[0].headers["Content-Type"] == "application/json"


@pytest.mark.asyncio
async def test_post_error_status_returned_with_body() -> None:
    fetcher, _ = make_fetcher(lambda request: httpx.Response(401, text="bad signature"))
    response = await fetcher.post("https://remote.example/inbox", b"{}", auth=HeaderAuth())
    assert response.status_code == 401
    assert response.text == "bad signature"


@pytest.mark.asyncio
async def test_post_does_not_follow_redirects() -> None:
    fetcher, recorder = make_fetcher(
        lambda request: httpx.Response(307, headers={"Location": "https://other.example/inbox"})
    )
    response = await fetcher.post("https://remote.example/inbox", b"{}", auth=HeaderAuth())
    assert response.status_code == 307
    assert recorder.urls == ["https://remote.example/inbox"]


@pytest.mark.asyncio
async def test_post_reads_capped_body() -> None:
    fetcher, _ = make_fetcher(lambda request: httpx.Response(500, content=b"e" * (POST_RESPONSE_CAP * 3)))
    response = await fetcher.post("https://remote.example/inbox", b"{}", auth=HeaderAuth())
    assert response.status_code == 500
    assert len(response.content) == POST_RESPONSE_CAP
    assert response.headers["Content-Length"] == str(POST_RESPONSE_CAP)


@pytest.mark.asyncio
@pytest.mark.parametrize("url", ["https://intranet.example/inbox", "http://127.0.0.1/inbox", "http://localhost/inbox"])
async def test_post_refuses_private(url: str) -> None:
    fetcher, recorder = make_fetcher(lambda request: httpx.Response(202))
    with pytest.raises(FetchRefused) as info:
        await fetcher.post(url, b"{}", auth=HeaderAuth())
    assert info.value.status is None
    assert recorder.requests == []


@pytest.mark.asyncio
async def test_post_connect_error_fails_without_status() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    fetcher, _ = make_fetcher(answer)
    with pytest.raises(FetchFailed) as info:
        await fetcher.post("https://remote.example/inbox", b"{}", auth=HeaderAuth())
    assert info.value.status is None
    assert info.value.reason.startswith("network error")


@pytest.mark.asyncio
async def test_post_timeout_fails() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.WriteTimeout("slow", request=request)

    fetcher, _ = make_fetcher(answer)
    with pytest.raises(FetchFailed) as info:
        await fetcher.post("https://remote.example/inbox", b"{}", auth=HeaderAuth())
    assert info.value.reason == "timed out"
