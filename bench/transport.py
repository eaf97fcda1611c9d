"""The outbound HTTP client under concurrency: httpx's own pool against httpx-aiohttp.

``python -m bench.transport [--requests 3000]``

A trivial server (uvicorn, one route answering 202) runs in its own process on
loopback; this process POSTs 1 KiB bodies to it through an ``httpx.AsyncClient`` with
1 and with 100 requests in flight, once with httpx's default transport (httpcore's
pool) and once with ``httpx_aiohttp.AiohttpTransport``, the same client API on
aiohttp's connection pool. A second pass sends every request to a different port
(a new connection each, as a fan-out to many servers does). Bare cost: the same
requests through the lean raw-socket client the other benchmarks use.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench import common
from bench.common import LOOPBACK

BODY = b'{"type":"Announce","padding":"' + b"x" * 1000 + b'"}'
PORTS = 50


async def _accept(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


def serve(ports: list[int]) -> None:
    """Role: the trivial server, listening on every port in ``ports``."""

    async def main() -> None:
        app = Starlette(routes=[Route("/inbox", _accept, methods=["POST"]), Route("/", _accept)])
        servers = [
            uvicorn.Server(
                uvicorn.Config(app, host=LOOPBACK, port=p, log_level="warning", access_log=False, lifespan="off")
            )
            for p in ports
        ]
        await asyncio.gather(*(s.serve() for s in servers))

    common.run(main())


def client(kind: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30.0)
    transport: Any = None
    if kind == "aiohttp":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport(limits=limits, trust_env=False)
    elif kind == "kith":
        from server.federation.client import make_http_client

        return make_http_client()
    return httpx.AsyncClient(transport=transport, limits=limits, trust_env=False, timeout=10.0)


async def measure(kind: str, urls: list[str], in_flight: int) -> tuple[float, float, int]:
    """Requests per second, p99 latency and failures for ``urls`` through one client."""
    async with client(kind) as http:
        latencies: list[float] = []
        failures = 0
        position = 0

        async def lane() -> None:
            nonlocal position, failures
            while position < len(urls):
                url = urls[position]
                position += 1
                started = time.perf_counter()
                try:
                    response = await http.post(url, content=BODY, headers={"Content-Type": "application/json"})
                    failures += response.status_code != 202
                except httpx.HTTPError:
                    failures += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        async with asyncio.timeout(300):
            await asyncio.gather(*(lane() for _ in range(in_flight)))
        wall = time.perf_counter() - started
    return len(urls) / wall, common.percentile(latencies, 99), failures


async def run(args: argparse.Namespace) -> None:
    common.print_header("Outbound HTTP client (bench.transport)", await common.postgres_version())
    for attempt in range(3):  # a port picked free may be taken before the server binds it
        ports = [common.free_port() for _ in range(PORTS)]
        try:
            server = common.ServerProcess(
                [sys.executable, "-m", "bench.transport", "--serve", ",".join(map(str, ports))], ports[0]
            ).start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        one_host = [f"http://{LOOPBACK}:{ports[0]}/inbox"] * args.requests
        many = [f"http://{LOOPBACK}:{ports[i % PORTS]}/inbox" for i in range(args.requests)]
        raw = [common.http_request("POST", "/inbox", f"{LOOPBACK}:{ports[0]}", {}, BODY)] * args.requests
        print(f"scenario:   {args.requests} POSTs of {len(BODY)} bytes per line; server: uvicorn in its own process")
        print()
        print(f"{'client':<34} {'in flight':>9} {'req/s':>8} {'p99':>10} failures")
        for in_flight in (1, 100):
            results, wall = await common.run_load(LOOPBACK, ports[0], raw, concurrency=in_flight)
            s = common.summarize(results, wall)
            print(f"{'bare (raw sockets), one server':<34} {in_flight:>9} {s['rate']:>8.0f} {common.ms(s['p99']):>10}")
            for kind in ("httpx", "aiohttp", "kith"):
                rate, p99, failures = await measure(kind, one_host, in_flight)
                label = {
                    "httpx": "httpx default pool",
                    "aiohttp": "httpx + AiohttpTransport",
                    "kith": "make_http_client() (Kith)",
                }[kind]
                print(f"{label + ', one server':<34} {in_flight:>9} {rate:>8.0f} {common.ms(p99):>10} {failures}")
        for kind in ("httpx", "aiohttp", "kith"):
            rate, p99, failures = await measure(kind, many, 100)
            label = {
                "httpx": "httpx default pool",
                "aiohttp": "httpx + AiohttpTransport",
                "kith": "make_http_client() (Kith)",
            }[kind]
            print(f"{label + f', {PORTS} servers':<34} {100:>9} {rate:>8.0f} {common.ms(p99):>10} {failures}")
    finally:
        server.stop()
        common.print_footer()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement (default 3000)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve([int(p) for p in args.serve.split(",")])
    else:
        common.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
