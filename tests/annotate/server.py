"""A real `rlhf-ads annotate serve` process on a loopback port, for the tests that need one (the browser, the load
and the kill tests), and a candidates file of any size."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager

import httpx

from tests.annotate.conftest import write_jsonl
from tests.helpers import RLHF_ADS


def many_candidates(path, briefs: int, per_brief: int) -> str:
    """`briefs` briefs of `per_brief` different ads each (per_brief * (per_brief - 1) / 2 pairs a brief)."""
    rows = [{"brief_id": f"b{b}", "product": f"product {b}", "platform": "meta", "field": "headline",
             "text": f"Ad {i} for product {b}: try it today"} for b in range(briefs) for i in range(per_brief)]
    return write_jsonl(path, rows)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(db, *args: str) -> tuple[subprocess.Popen, str]:
    """Start the server on a free loopback port and wait until it answers -> (process, base url)."""
    port = free_port()
    process = subprocess.Popen([RLHF_ADS, "annotate", "serve", "--db", str(db), "--port", str(port), *args],
                               env=dict(os.environ, HF_HUB_OFFLINE="1"), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server stopped: {process.stdout.read()}")
        try:
            if httpx.get(url + "/", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("the server did not answer within 60 s")


@contextmanager
def serving(db, *args: str):
    """The server for the length of a with-block (then stopped, killed if it must be) -> its base url."""
    process, url = start(db, *args)
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
