"""A server's life: capacity and 429, idle expiry, the token, SIGTERM, and refusing to listen off loopback without
a token. Each test starts its own `jaxgan serve demo` subprocess."""

import asyncio
import json
import subprocess
import sys
import time

import httpx
import websockets

from tests.helpers import ServerProcess

http = httpx.Client(timeout=120)  # the first request of a kind waits for its compilation

START = {"model": "demo", "seed": 0, "points": [[20, 10]], "targets": [[20, 6]], "max_steps": 2}


def wait_until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_capacity_429_then_delete_frees_a_slot_and_idle_sessions_expire():
    server = ServerProcess("demo", "--max-sessions", "2", "--session-ttl", "3", "--token", "s3cret", "--warmup",
                           "--max-batch", "2", "--max-steps", "50")  # a cap below the default 200 steps
    auth = {"Authorization": "Bearer s3cret"}
    try:
        url = server.url
        # --warmup compiled and timed both batch sizes of the default drag step before the first request
        (pool,) = http.get(url + "/api/stats", headers=auth).json()["pools"].values()
        assert set(pool) == {"1", "2"} and all(b["seconds_per_call"] > 0 and b["calls"] == 3 for b in pool.values())
        assert http.get(url + "/api/health").status_code == 401
        assert http.get(url + "/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert http.get(url + "/api/health", headers=auth).json()["sessions"] == {"live": 0, "capacity": 2,
                                                                                   "running": 0}
        first = http.post(url + "/api/drag", json=START, headers=auth).json()["id"]
        second = http.post(url + "/api/drag", json=START, headers=auth).json()["id"]
        refused = http.post(url + "/api/drag", json=START, headers=auth)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        assert "2 session slots" in refused.json()["error"]
        assert http.delete(f"{url}/api/drag/{first}", headers=auth).status_code == 200
        third = http.post(url + "/api/drag", json=START, headers=auth)
        assert third.status_code == 201
        # finished sessions keep their slots until they expire: untouched for 3 s, both go
        live = lambda: http.get(url + "/api/health", headers=auth).json()["sessions"]["live"]  # noqa: E731
        assert live() == 2
        wait_until(lambda: live() == 0, timeout=30)
        assert http.get(f"{url}/api/drag/{second}", headers=auth).status_code == 404
    finally:
        assert server.stop() == 0, server.output()


def test_sigterm_ends_running_sessions_cleanly_and_exits_0():
    server = ServerProcess("demo")  # the default capacity: from the drag step's memory analysis
    url = server.url
    health = http.get(url + "/api/health").json()
    assert 1 <= health["sessions"]["capacity"] <= 1024
    assert http.get(url + "/api/stats").json()["memory_per_session"] > 100_000
    sid = http.post(url + "/api/drag", json={**START, "max_steps": 2000, "lr": 1e-4}).json()["id"]

    async def watch():
        messages = []
        async with websockets.connect(url.replace("http", "ws") + f"/api/drag/{sid}/events?image_every=0") as ws:
            async for message in ws:
                messages.append(json.loads(message))
                if len(messages) == 3:
                    server.proc.terminate()  # SIGTERM while the client watches
        return messages
    messages = asyncio.run(asyncio.wait_for(watch(), 60))
    assert messages[-1]["type"] == "end" and messages[-1]["state"] == "stopped"
    assert messages[-1]["stop_reason"] == "server shutting down"
    assert server.proc.wait(60) == 0, server.output()


def test_a_non_loopback_bind_without_a_token_is_refused():
    result = subprocess.run([sys.executable, "-m", "jaxgan", "serve", "demo", "--host", "0.0.0.0", "--port", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0] and "--insecure" in lines[0], result.stderr
