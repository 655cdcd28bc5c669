"""Storage that loses nothing: 100 parallel submissions are all stored once, and a server killed
in the middle of a load leaves a database that opens, passes the audit check and holds every
screening it acknowledged. Both on SQLite and on PostgreSQL, against a real server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from ketascreen.storage import Database, Screenings, verify
from ketascreen.testing import merge_intake
from ketascreen.web.app import create_app
from tests.web.conftest import SECRET, make_accounts, make_settings
from tests.web.live import free_port, serve


async def _post_all(url: str, headers: dict[str, str], keys: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        return await asyncio.gather(*[
            client.post("/api/v1/screenings", json=merge_intake({"id": f"par-{key}"}),
                        headers={**headers, "Idempotency-Key": key})
            for key in keys])


def test_100_parallel_submissions_are_all_stored_once(tmp_path: Path, db: Database) -> None:
    accounts = make_accounts(db)
    app = create_app(make_settings(tmp_path, db.url), database=db)
    keys = [f"k{i:03d}" for i in range(100)]
    retried = keys[::5]  # 20 of them are sent twice at the same time, as a retrying client would
    with serve(app) as url:
        responses = asyncio.run(_post_all(url, accounts.bearer("clinician"), keys + retried))
    assert all(r.status_code in (200, 201) for r in responses), {
        r.status_code for r in responses}
    assert sum(r.status_code == 201 for r in responses) == 100
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 100
    with db.read() as s:
        stored = set(Screenings(s).ids())
        report = verify(s)
    assert stored == ids
    assert report.ok, report.problems
    assert report.screenings == 100
    assert report.entries == 100 + 6  # one "create" each, plus the accounts and tokens


def _start_server(url: str, port: int, data_dir: Path, log: IO[bytes]
                  ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KETASCREEN_SECRET_KEY": SECRET, "KETASCREEN_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "ketascreen.cli", "serve", "--port", str(port),
         "--database-url", url], env=env, stdout=log, stderr=subprocess.STDOUT)


async def _load_until_killed(base: str, headers: dict[str, str], server: subprocess.Popen[bytes],
                             kill_after: int) -> tuple[set[str], int]:
    """Send screenings from 20 clients until ``kill_after`` are acknowledged, kill the server
    (SIGKILL, mid-flight), and return the acknowledged ids and how many requests failed."""
    acked: set[str] = set()
    failed = 0
    killed = asyncio.Event()

    async def worker(n: int) -> None:
        nonlocal failed
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            i = 0
            while not killed.is_set():
                i += 1
                try:
                    r = await client.post("/api/v1/screenings", headers=headers,
                                          json=merge_intake({"id": f"crash-{n}-{i}"}))
                except httpx.HTTPError:
                    failed += 1
                    return
                if r.status_code == 201:
                    acked.add(r.json()["id"])
                if len(acked) >= kill_after and not killed.is_set():
                    server.send_signal(signal.SIGKILL)
                    killed.set()

    await asyncio.gather(*[worker(n) for n in range(20)])
    return acked, failed


def test_a_killed_server_loses_no_acknowledged_screening(tmp_path: Path, db: Database) -> None:
    accounts = make_accounts(db)
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = _start_server(db.url, port, tmp_path / "data", log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        acked, failed = asyncio.run(_load_until_killed(
            base, accounts.bearer("clinician"), server, kill_after=150))
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=30)
    assert server.returncode == -signal.SIGKILL
    assert len(acked) >= 150 and failed > 0  # killed with requests in flight
    db.dispose()
    reopened = Database(db.url)  # a database that opens…
    try:
        with reopened.read() as s:
            report = verify(s)  # …passes the audit check…
            stored = set(Screenings(s).ids())
    finally:
        reopened.dispose()
    assert report.ok, report.problems
    assert acked <= stored  # …and holds every screening that was acknowledged
    result = subprocess.run([sys.executable, "-m", "ketascreen.cli", "audit", "verify",
                             "--database-url", db.url], capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "audit log OK" in result.stdout
