"""The outbox's restart scenario at full size: 2,000 schools, a sender killed twice mid-wave.

    .venv/bin/python -m bench.restart_bench                   # 2,000 schools, about 40 s
    .venv/bin/python -m bench.restart_bench --schools 500     # another size

The test suite runs the same scenario at 200 schools (tests/bot/test_outbox_telegram.py,
`restart_wave`); this is the size it was first written for. The fake Bot API's limits run on a
quarter-second window (120 msg/s overall, 4/s per chat), the sender at 25/30 of that, claims of
schools / 20 rows. It asserts what the test asserts (every school reminded, duplicates within what
was in flight at the kills, no 429, the officers' alerts paced) and prints how long it took.
Nothing leaves 127.0.0.1; RESULTS.md is not written.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from bench import loopback_only


async def run(schools: int, workdir: Path) -> int:
    """One run in `workdir` (a fresh database, migrated as the app opens it); the messages in flight at the kills."""
    loopback_only()
    from tests.bot.test_outbox_telegram import WINDOW, restart_wave, settings_for
    from tests.fakes.telegram_api import FakeBotAPI, FloodLimits

    with FakeBotAPI(limits=FloodLimits(window=WINDOW)) as api:
        settings = settings_for(workdir, api, batch=max(1, schools // 20))
        return await restart_wave(settings, api, schools)


def main() -> None:
    """Run the scenario once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schools", type=int, default=2000)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="schoolbot-restart-") as tmp:
        in_flight = asyncio.run(run(args.schools, Path(tmp)))
    print(
        f"{args.schools:,} schools reminded once each through two restarts "
        f"({in_flight} message(s) in flight at the kills, every assertion held) "
        f"in {time.perf_counter() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
