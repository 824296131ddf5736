"""Explorer latency (issue 13's targets): upload -> prediction + Grad-CAM p95 < 200 ms, a click
-> dot-product panel p95 < 50 ms, first page load < 1 s; and a bounded load test (200
requests from 8 concurrent clients on 127.0.0.1, no 5xx).

    .venv/bin/cnnlab train --preset fast --epochs 1 --out /tmp/explorer_bench/fast
    .venv/bin/python benchmarks/explorer_latency.py /tmp/explorer_bench/fast

The server is `cnnlab serve RUN --port 0` in a child process (127.0.0.1, a free port); requests
go through httpx over TCP from this process. Each upload is a different test image (a
PNG, so nothing is served from the explorer's per-image cache); each click a random conv
call (a conv called twice is two: /api/model's `convs` and `maps` name calls "name",
"name #2"), filter and position of an uploaded image. The first page load is timed in
Debian's chromium (Playwright, a fresh browser context each time, so nothing is cached):
navigation until the page has drawn the architecture and the test images. The load average
is printed: on a shared machine every number is an upper bound.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]  # fmt: skip


def start(run: str, threads: int) -> tuple[str, subprocess.Popen]:
    """`cnnlab serve RUN --port 0` as a child process (as a user runs it): its URL."""
    cmd = [
        sys.executable,
        "-m",
        "cnnlab.cli",
        "serve",
        run,
        "--port",
        "0",
        "--threads",
        str(threads),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        print("  serve:", line.rstrip())
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if found:
            return found.group(0), proc
    raise SystemExit(f"cnnlab serve exited ({proc.wait()}) without printing its URL")


def stats(ms: list[float]) -> str:
    a = np.array(ms)
    p50, p95 = np.percentile(a, 50), np.percentile(a, 95)
    return f"n={len(a)}  p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  max {a.max():6.1f} ms"


def uploads(url: str, model: dict, n: int) -> tuple[list[float], list[str]]:
    """POST n different test images (PNG files, from /api/samples) as uploads:
    (latencies ms, image ids)."""
    times, ids = [], []
    with httpx.Client(timeout=60) as client:
        total = client.get(f"{url}api/samples?count=1").json()["total"]
        offset = max(0, min(1000, total - n))  # past the first page's images where there are
        found = client.get(f"{url}api/samples?offset={offset}&count={n}").json()["samples"]
        for i, sample in enumerate(found):
            body = base64.b64decode(sample["image"].split(",", 1)[1])
            start = time.perf_counter()
            r = client.post(url + "api/predict", files={"image": (f"{i}.png", body, "image/png")})
            times.append((time.perf_counter() - start) * 1000)
            r.raise_for_status()
            assert len(r.json()["gradcam"]) == model["input_shape"][1]
            ids.append(r.json()["image"])
    return times, ids


def clicks(url: str, model: dict, image: str, n: int, seed: int = 0) -> list[float]:
    """GET n dot-product traces at random convs, filters and positions."""
    rng = random.Random(seed)
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(n):
            conv = rng.choice(model["convs"])["conv"]  # a call's label: "conv", "conv #2"
            f, h, w = model["maps"][conv]
            f, i, j = rng.randrange(f), rng.randrange(h), rng.randrange(w)
            q = {"image": image, "layer": conv, "channel": f, "row": i, "col": j}
            start = time.perf_counter()
            r = client.get(f"{url}api/trace", params=q)  # params: "#" and " " escaped
            times.append((time.perf_counter() - start) * 1000)
            r.raise_for_status()
            t = r.json()
            assert abs(t["output"] - t["network"]) < 1e-4 * max(1.0, abs(t["network"]))
    return times


def baseline(url: str, n: int) -> list[float]:
    """The HTTP floor: a route that computes next to nothing."""
    times = []
    with httpx.Client(timeout=60) as client:
        for _ in range(n):
            start = time.perf_counter()
            client.get(url + "api/geometry?size=7&kernel=3").raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    return times


def page_loads(url: str, n: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        for _ in range(n):
            context = browser.new_context()
            page = context.new_page()
            start = time.perf_counter()
            page.goto(url)
            while not page.evaluate("document.body.dataset.ready === '1'"):
                time.sleep(0.005)
            times.append((time.perf_counter() - start) * 1000)
            context.close()
        browser.close()
    return times


def load(
    url: str, model: dict, image: str, total: int, clients: int
) -> tuple[list[float], list[int]]:
    """`total` requests (1 in 4 an upload-free predict of a test image, the rest clicks on
    the first conv call's map)."""
    conv = model["convs"][0]["conv"]
    c, h, w = model["maps"][conv]
    samples = httpx.get(f"{url}api/samples?count=1", timeout=60).json()["total"]

    def hit(n: int) -> tuple[int, float]:
        start = time.perf_counter()
        if n % 4 == 0:
            r = httpx.post(url + "api/predict", data={"sample": n % samples}, timeout=60)
        else:
            q = {"image": image, "layer": conv, "channel": n % c, "row": n % h, "col": 3 * n % w}
            r = httpx.get(f"{url}api/trace", params=q, timeout=60)
        return r.status_code, (time.perf_counter() - start) * 1000

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(hit, range(total)))
    return [t for _, t in results], [c for c, _ in results]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory (e.g. a 1-epoch `fast` run)")
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--clicks", type=int, default=300)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--load", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="as `cnnlab serve --threads`")
    args = parser.parse_args()

    start_app = time.perf_counter()
    url, proc = start(args.run, args.threads)
    print(f"serving after {time.perf_counter() - start_app:.1f} s; cpus {os.cpu_count()}")
    try:
        model = httpx.get(url + "api/model", timeout=60).json()
        print(f"load average before: {os.getloadavg()}")
        base = baseline(url, 100)
        print(f"baseline, GET /api/geometry (tiny):      {stats(base)}")
        up, ids = uploads(url, model, args.uploads)
        print(f"upload -> prediction + Grad-CAM:         {stats(up)}")
        click = clicks(url, model, ids[-1], args.clicks)  # the latest upload is kept
        print(f"click -> dot-product panel:              {stats(click)}")
        pages = page_loads(url, args.pages)
        print(f"first page load (chromium, cold context): {stats(pages)}")
        times, codes = load(url, model, ids[-1], args.load, args.clients)
        bad = sum(c >= 500 for c in codes)
        print(f"load, {args.load} requests / {args.clients} clients:   {stats(times)}  "
              f"5xx: {bad}, non-200: {sum(c != 200 for c in codes)}")  # fmt: skip
        print(f"load average after: {os.getloadavg()}")
    finally:
        proc.terminate()
        proc.wait(10)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
