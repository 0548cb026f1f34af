"""The served app as designers meet it, on loopback: many designers at once for a bounded time store every label
exactly once, and a server killed mid-run (SIGKILL) keeps every label it acknowledged."""

from __future__ import annotations

import random
import secrets
import signal
import threading
import time

import httpx
import pytest

from rlhf_ads.annotate.store import Store
from tests.annotate.server import many_candidates, serving, start

pytestmark = pytest.mark.integration  # a real server (or browser) on loopback

LOAD_DESIGNERS = 24
LOAD_SECONDS = 8.0


def designer_loop(url: str, token: str, stop: threading.Event, acknowledged: list, failures: list, repeat: float = 0.2):
    """One simulated designer: next pair, a label (sometimes sent twice, as a retry would), until `stop` or no pair
    is left. Appends (label_id, request_id) per acknowledged new label; any other answer goes to `failures`."""
    rng = random.Random(token)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        while not stop.is_set():
            try:
                shown = client.get("/api/next").json()
                if shown["done"]:
                    return
                body = {"assignment_id": shown["assignment_id"], "choice": rng.choice(["a", "b", "tie", "unusable"]),
                        "request_id": secrets.token_hex(8)}
                for attempt in range(2 if rng.random() < repeat else 1):
                    response = client.post("/api/labels", json=body)
                    if response.status_code != 200:
                        failures.append(response.text)
                        return
                    if not response.json()["duplicate"]:
                        acknowledged.append((response.json()["label_id"], body["request_id"]))
            except httpx.TransportError:  # the server went away (the kill test)
                return
            except Exception as exc:  # anything else (a bad answer's JSON, say) fails the test, not just the thread
                failures.append(repr(exc))
                return


def run_designers(url: str, tokens: list[str], seconds: float, stop: threading.Event | None = None):
    stop = stop or threading.Event()
    acknowledged, failures = [], []
    threads = [threading.Thread(target=designer_loop, args=(url, t, stop, acknowledged, failures)) for t in tokens]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return acknowledged, failures


def test_many_designers_at_once_store_every_label_exactly_once(tmp_path):
    store = Store(tmp_path / "load.sqlite")
    tokens = [store.add_designer(f"designer{i:02d}") for i in range(LOAD_DESIGNERS)]
    with serving(store.path, "--candidates", many_candidates(tmp_path / "c.jsonl", 40, 5), "--overlap", "3") as url:
        acknowledged, failures = run_designers(url, tokens, LOAD_SECONDS)
    assert not failures, failures[:3]
    labels = store.labels()
    assert len(acknowledged) > LOAD_DESIGNERS  # every designer got through at least one pair on average
    assert sorted(acknowledged) == sorted((label.id, label.request_id) for label in labels)  # each once, none lost
    per_pair = {}
    for label in labels:
        per_pair.setdefault(label.pair_id, set()).add(label.designer)
    assert max(len(names) for names in per_pair.values()) <= 3  # the overlap holds under load
    assert len({(label.pair_id, label.designer) for label in labels}) == len(labels)


def test_a_killed_server_keeps_every_label_it_acknowledged(tmp_path):
    store = Store(tmp_path / "kill.sqlite")
    tokens = [store.add_designer(f"d{i}") for i in range(6)]
    candidates = many_candidates(tmp_path / "c.jsonl", 30, 5)
    process, url = start(store.path, "--candidates", candidates, "--overlap", "2")
    stop = threading.Event()
    acknowledged, failures = [], []
    threads = [threading.Thread(target=designer_loop, args=(url, t, stop, acknowledged, failures)) for t in tokens]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # mid-run: designers are still sending
    process.wait()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[:3]
    reopened = Store(store.path)
    assert reopened.integrity() == "ok"
    stored = {(label.id, label.request_id) for label in reopened.labels()}
    assert len(acknowledged) >= 30 and set(acknowledged) <= stored  # nothing acknowledged is lost
    assert len({(label.pair_id, label.designer) for label in reopened.labels()}) == len(stored)
    before = len(stored)
    with serving(store.path, "--overlap", "2") as again:  # restarted on the same database: labelling goes on
        more, failures = run_designers(again, tokens[:2], 1.0)
    assert not failures and len(Store(store.path).labels()) == before + len(more) > before
