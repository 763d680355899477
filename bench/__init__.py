"""Benchmarks (not part of `make test`): see bench/README.md. Run from the root as `python -m bench.<name>`."""

import compileall
import os
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: benchmarks write bench/RESULTS.md under it
SPEED_STEPS = 10_000_000  # the loop `host_speed` times
# How the deploy starts a bot (deploy/schoolbot@.service and deploy/compose.yaml set PYTHONOPTIMIZE=2):
# byte-code without docstrings or asserts, some 8 MB less resident on PostgreSQL. The benches start
# `schoolbot run` and the echo bot so; `--plain` starts them as `schoolbot run` typed in a shell.
DEPLOYED = ("-OO",)
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def loopback_only() -> None:
    """Everything stays on 127.0.0.1 (no proxy between us and the fakes); PTB reports retry_after as a
    timedelta (no deprecation noise)."""
    os.environ["PTB_TIMEDELTA"] = "1"
    for name in PROXIES:
        os.environ.pop(name, None)


def python(plain: bool = False) -> list[str]:
    """The command line's start for a bot a benchmark spawns: this Python, as deployed unless `plain`."""
    return [sys.executable, *(() if plain else DEPLOYED)]


def compiled(tree: Path = ROOT) -> None:
    """The tree's own packages byte-compiled, plain and as deployed, and the installed packages as
    deployed (pip writes their plain caches), as a deployment has them (the Dockerfile and the systemd
    unit run compileall), so that a bot started by a benchmark reads them instead of compiling them at
    each start: with PYTHONDONTWRITEBYTECODE set, as on the development VM, no start ever writes the
    caches, and a start compiled some 130 files of the tree (0.1-0.4 s of CPU) and, as deployed, every
    library (4 s). The first call takes some 10 s; the next, under one."""
    for package in ("bot", "handlers", "storage"):
        for level in (0, 2):
            compileall.compile_dir(tree / package, quiet=1, optimize=level)
    for folder in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        compileall.compile_dir(folder, quiet=1, optimize=2, workers=0)


def host_speed() -> float:
    """Seconds this host takes for a 10-million-step Python loop (in a function: locals), now. The
    development VM's speed moves by the hour (0.36-0.67 s through session 13, where sessions 10-12
    noted 0.19-0.39 s for such a loop): a figure compares only with one taken at a like speed."""
    started = time.perf_counter()
    total = 0
    for step in range(SPEED_STEPS):
        total += step
    return time.perf_counter() - started
