"""What the serving benchmarks share: the texts they send (SST-2 sentences, Amazon reviews), a server process
with its readiness and peak memory, and an HTTP load driver."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from benchmarks.harness import ROOT


def sentences(data_dir: Path) -> list[str]:
    dev = data_dir / "sst2/dev.tsv"
    return [line.split("\t")[0] for line in dev.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]


def documents(data_dir: Path, limit: int = 5000) -> list[str]:
    """Amazon reviews of 100-500 words from the four domains' training files, in file order."""
    import csv

    found = []
    for domain in ("books", "dvd", "electronics", "kitchen"):
        with open(data_dir / "multidomain" / domain / "train.tsv", encoding="utf-8") as f:
            found += [
                row["sentence"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if 100 <= len(row["sentence"].split()) <= 500
            ]
    return found[:limit]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process, its readiness, and its peak resident memory (sampled every 50 ms)."""

    def __init__(self, command: list[str], port: int):
        import psutil

        self.port = port
        # A session of its own: a server's worker processes (LitServe spawns them) are stopped with it, and
        # none is left to take CPU from the next server measured.
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        self._sampling = True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while self._sampling and self.proc.poll() is None:
            try:
                self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)
            except Exception:
                return
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 300) -> None:
        import httpx

        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited early: {self.proc.stderr.read()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit("server did not become ready")

    def stop(self) -> int:
        """SIGTERM to the server (its exit code says whether it shut down cleanly), then SIGKILL to whatever of
        its session is left."""
        import signal

        self._sampling = False
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = -9
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        return code


async def drive(url: str, texts: list[str], concurrency: int, requests: int) -> dict:
    """`requests` single-sentence requests, `concurrency` in flight at a time; latency per request.

    aiohttp's client: httpx's connection pool, tried first, became the bottleneck beyond ~8 concurrent
    requests on this machine (a trivial endpoint fell from 1,900 to 195 requests/s at concurrency 64)."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def worker():
            nonlocal errors
            for i in counter:
                start = time.perf_counter()
                try:
                    async with session.post(url, json={"inputs": [texts[i % len(texts)]]}) as response:
                        await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2)  # noqa: E731
    return {
        "concurrency": concurrency,
        "requests": requests,
        "errors": errors,
        "sentences_per_s": round(requests / wall, 1),
        "p50_ms": pick(0.50),
        "p95_ms": pick(0.95),
        "p99_ms": pick(0.99),
    }
