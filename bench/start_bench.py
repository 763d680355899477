"""Start to first reply: `schoolbot run` in a new process, polling the loopback fake Bot API.

    .venv/bin/python -m bench.start_bench                         # 7 starts of this tree
    .venv/bin/python -m bench.start_bench --tree /tmp/old --runs 5 # another checkout, same Python
    .venv/bin/python -m bench.start_bench --db postgres           # on a fresh PostgreSQL database

Each run migrates a fresh SQLite file (or, with `--db postgres`, a fresh database on the server of
`--pg-url`, dropped afterwards) first (not timed: a start then has nothing to migrate, as every start
but the first), queues one `/start` from a principal on the fake (tests/fakes/telegram_api.py,
no limits), starts `schoolbot run` from `--tree` as the deploy does (`python -OO`; `--plain`: as typed
in a shell), and times from the process's start to the fake's receiving the answer (sendMessage). It
prints each run, the median, and the process's resident memory (VmRSS) and peak (VmHWM) at that moment,
and the CPU time (user + system) it had used: on a shared machine the CPU time moves less than the wall
time. Nothing leaves 127.0.0.1; RESULTS.md is not written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import ROOT, compiled, python
from bench.interactive_bench import PG_DEFAULT, fresh_database, postgres_reason

LAUNCH = "import sys; from bot.cli import main; sys.argv[0] = 'schoolbot'; main()"


def memory(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM of a running process, in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(tree: Path, workdir: Path, url: str, plain: bool) -> tuple[float, float, int, int]:
    """One start of `schoolbot run` from `tree` on the database at `url` (as deployed, or `plain`):
    seconds to the first reply, the CPU seconds it took, RSS and peak RSS in MB."""
    from storage import migrate
    from storage.db import Database
    from tests.fakes.telegram_api import FakeBotAPI, TgUser, text_update

    db = Database(url)
    migrate.upgrade(db)
    db.dispose()
    with FakeBotAPI() as api:
        tg = api.settings()
        config = workdir / "config.toml"
        config.write_text(
            f'database_url = "{url}"\nmedia_dir = "{workdir / "media"}"\n'
            + "[telegram]\n"
            + "".join(f'{key} = "{value}"\n' for key, value in tg.items())
        )
        api.push_update(text_update(TgUser(4242, "Hiệu trưởng"), "/start"))
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*python(plain), "-c", LAUNCH, "run", "--config", str(config)],
            cwd=tree,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while not api.calls_to("sendMessage"):
                if proc.poll() is not None:
                    raise SystemExit(f"schoolbot run exited with {proc.returncode} before answering")
                if time.perf_counter() - started > 60:
                    raise SystemExit("no answer within 60 s")
                time.sleep(0.005)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(proc.pid)
            rss, peak = memory(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return elapsed, cpu, rss, peak


def main() -> None:
    """Run the starts and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout to start (default: this one)")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg-url", default=PG_DEFAULT, help="a PostgreSQL server's admin database URL")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="start as `schoolbot run` typed in a shell, not as deployed (-OO)",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    compiled(args.tree.resolve())
    if args.db == "postgres" and (why := postgres_reason(args.pg_url)):
        raise SystemExit(f"PostgreSQL: {why}")
    runs = []
    for n in range(args.runs + 1):  # the first warms the disk cache and is not counted
        with (
            tempfile.TemporaryDirectory(prefix="start-bench-") as tmp,
            fresh_database(args.db, Path(tmp), args.pg_url, "start") as url,
        ):
            seconds, cpu, rss, peak = one_start(args.tree.resolve(), Path(tmp), url, args.plain)
        if n:
            runs.append((seconds, cpu, rss, peak))
            print(
                f"run {n}: first reply after {seconds:.2f} s (CPU {cpu:.2f} s); RSS {rss} MB (peak {peak} MB)"
            )
    print(
        f"median of {len(runs)}: first reply after {statistics.median(r[0] for r in runs):.2f} s "
        f"(CPU {statistics.median(r[1] for r in runs):.2f} s); RSS {statistics.median(r[2] for r in runs):.0f} MB; "
        f"peak {statistics.median(r[3] for r in runs):.0f} MB"
    )


if __name__ == "__main__":
    main()
