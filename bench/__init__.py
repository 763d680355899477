"""Benchmarks (not part of `make test`): see bench/README.md. Run from the root as `python -m bench.<name>`."""

import compileall
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: benchmarks write bench/RESULTS.md under it
SPEED_STEPS = 10_000_000  # the loop `host_speed` times
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def loopback_only() -> None:
    """Everything stays on 127.0.0.1 (no proxy between us and the fakes); PTB reports retry_after as a
    timedelta (no deprecation noise)."""
    os.environ["PTB_TIMEDELTA"] = "1"
    for name in PROXIES:
        os.environ.pop(name, None)


def compiled(tree: Path = ROOT) -> None:
    """The tree's own packages byte-compiled, as a deployment has them (the Dockerfile runs compileall;
    a systemd install, README), so that a `schoolbot` started by a benchmark reads them instead of
    compiling all of them at each start: with PYTHONDONTWRITEBYTECODE set, as on the development VM,
    no start ever writes the caches, and a start compiled some 130 files (0.1-0.4 s of CPU) that
    python-telegram-bot's echo bot, installed by pip with its caches, never compiles."""
    for package in ("bot", "handlers", "storage"):
        compileall.compile_dir(tree / package, quiet=1)


def host_speed() -> float:
    """Seconds this host takes for a 10-million-step Python loop (in a function: locals), now. The
    development VM's speed moves by the hour (0.36-0.67 s through session 13, where sessions 10-12
    noted 0.19-0.39 s for such a loop): a figure compares only with one taken at a like speed."""
    started = time.perf_counter()
    total = 0
    for step in range(SPEED_STEPS):
        total += step
    return time.perf_counter() - started
