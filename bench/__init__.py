"""Benchmarks (not part of `make test`): see bench/README.md. Run from the root as `python -m bench.<name>`."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: benchmarks write bench/RESULTS.md under it
PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def loopback_only() -> None:
    """Everything stays on 127.0.0.1 (no proxy between us and the fakes); PTB reports retry_after as a
    timedelta (no deprecation noise)."""
    os.environ["PTB_TIMEDELTA"] = "1"
    for name in PROXIES:
        os.environ.pop(name, None)
