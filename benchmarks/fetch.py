"""Cost of a failed fetch: the reused fetch child against a new child per source, side by side.

Dead URLs (404 from the loopback server) cost almost nothing on the network, so what a list of them
costs is the fetch isolation itself. ``reused`` is what curation does (one long-lived
``python -m curation.download`` child per worker thread, :func:`curation.download.fetch_isolated`);
``fresh`` kills the child after every fetch, so each source starts a new interpreter (what every fetch
cost before the pool). Rounds alternate the two, so machine load hits both alike.

Run: ``.venv/bin/python benchmarks/fetch.py [--urls 20] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from datetime import date

# this folder holds benchmarks/curation.py: it must not shadow the curation package
sys.path[:] = [p for p in sys.path if not p.endswith("benchmarks")]

from avforge.synth.serve import FaultKind, LoopbackServer, fault_url  # noqa: E402
from curation.download import (  # noqa: E402
    DownloadConfig,
    DownloadError,
    fetch_isolated,
    shutdown_fetch_processes,
)


def one_pass(base_url: str, out: str, urls: int, fresh: bool) -> float:
    """Seconds per dead URL for ``urls`` sequential fetches."""
    cfg = DownloadConfig(retries=0)
    shutdown_fetch_processes()
    t0 = time.perf_counter()
    for i in range(urls):
        with contextlib.suppress(DownloadError):
            fetch_isolated(fault_url(base_url, FaultKind.NOT_FOUND, f"v{i}.mp4"), out, f"v{i}", cfg)
        if fresh:
            shutdown_fetch_processes()
    return (time.perf_counter() - t0) / urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer(tmp) as server:
        times: dict[str, list[float]] = {"fresh": [], "reused": []}
        for _ in range(args.rounds):
            for name in ("fresh", "reused"):
                times[name].append(one_pass(server.base_url, tmp, args.urls, name == "fresh"))
    shutdown_fetch_processes()
    fresh, reused = (statistics.median(times[k]) for k in ("fresh", "reused"))
    print(f"{date.today()} {platform.node()} {platform.processor() or platform.machine()}")
    print(f"dead URLs: {args.urls} per pass, {args.rounds} rounds, medians of s per URL")
    print(f"  fresh child per source  {fresh:.3f} s/URL")
    print(f"  reused fetch child      {reused:.3f} s/URL   ({fresh / reused:.1f}x faster)")


if __name__ == "__main__":
    main()
