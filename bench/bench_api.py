"""The API under a loopback load: `GET /simulator/status` and `GET /simulator/runs/{id}/trades`
with token auth, driven by `wrk` (Debian package `wrk`), each next to its floor in the same
server: a plain Django view that runs the same queries and answers the same JSON bytes with
orjson (bench/floor.py, mounted only by bench/settings.py; a test checks the bytes).

Not a test: returns figures (`python -m bench bench_api` prints them). Needs PostgreSQL and
Redis (DATABASE_URL, REDIS_URL; `./dev bench` starts both) and `wrk` on PATH (`apt-get install
wrk`); without it the figures are skipped with that message.

Scene: one user with a token, 5 running runs, the first with 500 trades (the trades endpoint
returns a full page of 50; status returns the runs and the 20 latest trades), and another user
with as many rows, so scoping by user is exercised.

Servers, one after the other: uvicorn with 1 worker, uvicorn with one worker per CPU (as the
Dockerfile runs it with WEB_CONCURRENCY), and one daphne. Per endpoint: a 1 s warm-up, then
`wrk -t1 -c8 -d8s --latency` (8 keep-alive connections): requests/s, p50 and p99 latency. The
query count per request is measured once with Django's test client and CaptureQueriesContext.
References under uvicorn with 1 worker, same load: a static file served by WhiteNoise (no view,
no database) and a 404 (the whole middleware stack, no view, no database).

Run: .venv/bin/python -m bench bench_api
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from bench.common import Daphne, Uvicorn, figure, missing_services, setup_django, skipped

BENCH = "api"
WRK_THREADS, WRK_CONNECTIONS, WRK_SECONDS = 1, 8, 8
TRADES = 500
RUNS = 5
STATIC_PATH = "/static/css/app.css"
NOT_FOUND_PATH = "/bench-no-such-page"
FLOOR_PREFIX = "/bench-floor"
SERVER_ENV = {"DJANGO_SETTINGS_MODULE": "bench.settings"}  # the product plus the floor's URLs
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def scene() -> tuple[str, int]:
    """Rows for the measured user (and as many for another user); returns (token, run id)."""
    from django.db import transaction
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from tests.accounts.factories import UserFactory
    from tests.simulator.surface_fixtures import make_run, make_trade

    stamp = time.time_ns()
    now = timezone.now()
    first_run_id = 0
    token = ""
    with transaction.atomic():
        for owner in ("bench-api", "bench-api-other"):
            user = UserFactory(username=f"{owner}-{stamp}")
            runs = [make_run(user, label=f"bench api {n}", started_at=now) for n in range(RUNS)]
            for n in range(TRADES):
                make_trade(runs[0], executed_at=now - timezone.timedelta(seconds=n))
            if not token:
                token, first_run_id = Token.objects.create(user=user).key, runs[0].pk
    return token, first_run_id


def queries_per_request(path: str, token: str) -> int:
    from django.db import connection, reset_queries
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    # The log keeps the last 9,000 queries only: once full, CaptureQueriesContext sees none.
    reset_queries()
    with override_settings(ROOT_URLCONF="bench.urls"), CaptureQueriesContext(connection) as captured:
        response = client.get(path, secure=True, headers={"authorization": f"Token {token}"})
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} answered {response.status_code} in the test client")
    return len(captured)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * UNIT_MS[unit]


def wrk(url: str, token: str | None, seconds: int) -> dict[str, Any]:
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Token {token}"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    requests = re.search(r"(\d+) requests in", output)
    per_s = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    if not (requests and per_s and p50 and p99):
        raise RuntimeError(f"could not read wrk's output:\n{output}")
    return {
        "requests": int(requests.group(1)),
        "per_s": float(per_s.group(1)),
        "p50_ms": _ms(p50.group(1)),
        "p99_ms": _ms(p99.group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def status_of(url: str, token: str | None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def measure(server: Daphne, endpoints: dict[str, tuple[str, str | None]]) -> dict[str, dict[str, Any]]:
    """wrk on each endpoint in turn (a 1 s warm-up first), against one running server."""
    results: dict[str, dict[str, Any]] = {}
    for name, (path, auth) in endpoints.items():
        code = status_of(server.base_url + path, auth)
        expected = 404 if name == "404" else 200
        if code != expected:
            results[name] = {"error": f"GET {path} answered {code}, expected {expected}"}
            continue
        wrk(server.base_url + path, auth, 1)  # warm-up: imports, connections, caches
        results[name] = wrk(server.base_url + path, auth, WRK_SECONDS)
        print(f"  {name}: {results[name]}", flush=True)
    return results


def endpoint_rows(
    label: str, real: dict[str, Any], floor: dict[str, Any], server: str, queries: tuple[int, int]
) -> list[dict[str, Any]]:
    """req/s and p99 of the real endpoint, each against the floor's in the same run."""
    if "error" in real or "error" in floor:
        return [figure(BENCH, f"{label}, {server}", None, "", note=real.get("error") or floor.get("error"))]
    floor_label = f"floor (plain Django view, same queries, orjson), {server}"
    load = f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s"
    return [
        figure(
            BENCH,
            f"{label}, {server}, requests/s",
            real["per_s"],
            "req/s",
            f"{floor_label}, requests/s",
            floor["per_s"],
        ),
        figure(
            BENCH,
            f"{label}, {server}, p99",
            real["p99_ms"],
            "ms",
            f"{floor_label}, p99",
            floor["p99_ms"],
            note=(
                f"{load}; p50 {real['p50_ms']:.1f} ms (floor {floor['p50_ms']:.1f}); "
                f"{real['requests']} requests, non-2xx {real['non_2xx']}; "
                f"queries per request {queries[0]} (floor {queries[1]})"
                + (f"; socket errors {real['socket_errors']}" if real["socket_errors"] else "")
            ),
        ),
    ]


def run() -> list[dict[str, Any]]:
    reason = missing_services()
    if reason:
        return skipped(BENCH, reason)
    if shutil.which("wrk") is None:
        return skipped(BENCH, "wrk is not installed: apt-get install -y wrk (Debian package), then rerun")
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from bench.common import migrate

    migrate()
    call_command("collectstatic", interactive=False, verbosity=0)  # the static reference's file
    token, run_id = scene()
    paths = {
        "status": "/simulator/status",
        "trades": f"/simulator/runs/{run_id}/trades",
    }
    endpoints: dict[str, tuple[str, str | None]] = {}
    for name, path in paths.items():
        endpoints[name] = (path, token)
        endpoints[f"{name} floor"] = (FLOOR_PREFIX + path, token)
    endpoints["static"] = (STATIC_PATH, None)
    endpoints["404"] = (NOT_FOUND_PATH, None)
    queries = {name: queries_per_request(path, token) for name, (path, auth) in endpoints.items() if auth}
    connection.close()  # the servers take over the database; this process only waits
    per_core = os.cpu_count() or 1
    servers = [
        (Uvicorn(workers=1, **SERVER_ENV), endpoints),
        (Uvicorn(workers=per_core, **SERVER_ENV), {k: v for k, v in endpoints.items() if v[1]}),
        (Daphne(**SERVER_ENV), {k: v for k, v in endpoints.items() if v[1]}),
    ]
    rows = []
    for server, measured in servers:
        print(f"  {server.name}:", flush=True)
        with server:
            results = measure(server, measured)
        for name, label in (
            ("status", "GET /simulator/status"),
            ("trades", "GET /simulator/runs/{id}/trades"),
        ):
            rows += endpoint_rows(
                label,
                results[name],
                results[f"{name} floor"],
                server.name,
                (queries[name], queries[f"{name} floor"]),
            )
        for name, label in (
            ("static", f"GET {STATIC_PATH} (WhiteNoise)"),
            ("404", f"GET {NOT_FOUND_PATH} (404)"),
        ):
            if name not in results:
                continue
            if "error" in results[name]:
                rows.append(figure(BENCH, f"reference {label}", None, "", note=results[name]["error"]))
                continue
            rows.append(
                figure(
                    BENCH,
                    f"{label}, {server.name}, requests/s",
                    results[name]["per_s"],
                    "req/s",
                    note=f"p50 {results[name]['p50_ms']:.1f} ms, p99 {results[name]['p99_ms']:.1f} ms",
                )
            )
    return rows


def main() -> None:
    from bench.common import print_table

    print_table(run(), "bench_api")


if __name__ == "__main__":
    main()
