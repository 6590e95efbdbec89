"""Bursts of long documents: does `bertx serve` keep the wait of the requests it accepts bounded?

Each burst is N clients at once, each sending one request of 1-64 real reviews (Amazon multi-domain
reviews, 600 characters at the median, up to 21,000: the long documents a real service receives).
A server that admits by a count of queued inputs accepts far more work than it can finish soon, so
accepted requests wait tens of seconds; admission by expected wait refuses at once (503 +
Retry-After) what would wait past the deadline, and the accepted stay near it.

Clients retry a 503 after the `Retry-After` the server gave (times 0.5-1.5, for up to 300 s), so both
servers end up scoring every document and their throughput compares. Measured in one run on one
machine, the same int8 export served twice:
    bertx, admission by expected wait (`--deadline-ms 2000`, the default)
    bertx, admission by queue count only (`--deadline-ms 1e9`: the behaviour before issue 26)
For each: the wait of accepted attempts p50 / p99 (what the deadline bounds), end-to-end latency with
retries, refusals and their own latency (they must be fast), 5xx answers (must be none), documents
scored per second.

Usage: python -m benchmarks.serve.serve_burst --model-dir RUN [--export-dir EXPORT] [--quick]
The last line of stdout is one JSON object; also saved in results/serve_burst[_quick].json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from benchmarks.harness import machine, save
from benchmarks.harness.serving import Server, free_port


def reviews(data_dir: Path) -> list[str]:
    texts = []
    for domain in ("books", "dvd", "electronics", "kitchen"):
        with open(data_dir / "multidomain" / domain / "train.tsv", encoding="utf-8") as handle:
            rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            column = next(rows).index("sentence")
            texts.extend(row[column] for row in rows if row[column].strip())
    return texts


GIVE_UP_S = 300  # a client retries refused requests for at most this long


async def burst(url: str, texts: list[str], clients: int, rng: random.Random) -> list[dict]:
    """`clients` requests sent at once, each of 1-64 reviews, each retried after a 503 as the server asks;
    status and latency of each."""
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600)) as session:

        async def one(inputs: list[str]) -> dict:
            """Send; on 503 wait the Retry-After the server gave and send again (as a well-behaved client does)."""
            first = time.perf_counter()
            refusals, refusal_seconds, disconnects = 0, [], 0
            while True:
                started = time.perf_counter()
                try:
                    async with session.post(url, json={"inputs": inputs}) as response:
                        await response.read()
                        status, retry = response.status, float(response.headers.get("Retry-After", "1"))
                except aiohttp.ServerDisconnectedError:
                    # the server closed a kept-alive connection just as the client reused it (a race every
                    # HTTP client meets): resend on a new connection, as clients' retry policies do
                    disconnects += 1
                    continue
                except aiohttp.ClientError as err:
                    status, retry = type(err).__name__, 1.0
                if status != 503 or time.perf_counter() - first > GIVE_UP_S:
                    break
                refusals += 1
                refusal_seconds.append(time.perf_counter() - started)
                await asyncio.sleep(retry * (0.5 + rng.random()))  # spread the retries
            return {
                "status": status,
                "seconds": time.perf_counter() - started,
                "end_to_end": time.perf_counter() - first,
                "inputs": len(inputs),
                "refusals": refusals,
                "refusal_seconds": refusal_seconds,
                "disconnects": disconnects,
            }

        requests = [[rng.choice(texts) for _ in range(rng.randint(1, 64))] for _ in range(clients)]
        return await asyncio.gather(*(one(r) for r in requests))


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def run_config(name: str, export_dir: str, deadline_ms: float, texts: list[str], bursts: int, clients: int, seed: int) -> dict:
    port = free_port()
    server = Server([sys.executable, "-m", "bertx.cli", "serve", f"m={export_dir}", "--port", str(port), "--deadline-ms", str(deadline_ms)], port)
    server.wait_ready()
    url = f"http://127.0.0.1:{port}/v1/models/m/predict"
    rng = random.Random(seed)
    asyncio.run(burst(url, texts, 4, random.Random(0)))  # warm-up
    answers = []
    started = time.perf_counter()
    for _ in range(bursts):
        answers += asyncio.run(burst(url, texts, clients, rng))
    wall = time.perf_counter() - started
    exit_code = server.stop()
    accepted = [a["seconds"] for a in answers if a["status"] == 200]
    end_to_end = [a["end_to_end"] for a in answers if a["status"] == 200]
    refused = [s for a in answers for s in a["refusal_seconds"]]
    result = {
        "name": name,
        "deadline_ms": deadline_ms,
        "requests": len(answers),
        "accepted": len(accepted),
        "refusals_503": len(refused),
        "gave_up": sum(a["status"] == 503 for a in answers),
        "errors_5xx": sum(isinstance(a["status"], int) and a["status"] >= 500 and a["status"] != 503 for a in answers),
        "statuses": {code: sum(str(a["status"]) == code for a in answers) for code in sorted({str(a["status"]) for a in answers})},
        # the wait of an accepted attempt (queue + its own batch): what the deadline bounds
        "accepted_p50_s": quantile(accepted, 0.5),
        "accepted_p99_s": quantile(accepted, 0.99),
        "accepted_max_s": quantile(accepted, 1.0),
        # from the first attempt to the answer, retries included: what the client sees
        "end_to_end_p50_s": quantile(end_to_end, 0.5),
        "end_to_end_p99_s": quantile(end_to_end, 0.99),
        "refused_p99_s": quantile(refused, 0.99),
        "keep_alive_races_resent": sum(a["disconnects"] for a in answers),
        "documents_per_s": round(sum(a["inputs"] for a in answers if a["status"] == 200) / wall, 1),
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(server.peak_rss / 2**20, 1),
        "exit_code_after_sigterm": exit_code,
    }
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, help="A fine-tuned run folder (exported to int8 unless --export-dir).")
    parser.add_argument("--export-dir", default=None)
    parser.add_argument("--quick", action="store_true", help="2 bursts of 100 clients instead of 3 of 200.")
    parser.add_argument("--data-dir", default=os.environ.get("BERTX_DATA_DIR", "../shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bursts, clients = (2, 100) if args.quick else (3, 200)
    texts = reviews(Path(args.data_dir))
    export_dir = args.export_dir
    if export_dir is None:
        export_dir = str(Path(tempfile.mkdtemp()) / "int8")
        subprocess.run([sys.executable, "-m", "bertx.cli", "export", args.model_dir, "--output", export_dir, "--quantize", "int8"], check=True)
    deadline = run_config("bertx (expected-wait admission)", export_dir, 2000, texts, bursts, clients, args.seed)
    count_only = run_config("bertx (queue-count admission only)", export_dir, 1e9, texts, bursts, clients, args.seed)
    result = {
        "benchmark": "serve_burst",
        "quick": args.quick,
        "bursts": bursts,
        "clients_per_burst": clients,
        "documents": {"source": "multidomain train reviews", "count": len(texts), "median_chars": sorted(map(len, texts))[len(texts) // 2]},
        "expected_wait": deadline,
        "count_only": count_only,
        "p99_ratio_count_only_over_deadline": round(count_only["accepted_p99_s"] / deadline["accepted_p99_s"], 1)
        if deadline["accepted_p99_s"]
        else None,
        "machine": machine(),
    }
    save("serve_burst_quick" if args.quick else "serve_burst", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
