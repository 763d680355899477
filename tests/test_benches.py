"""The benchmarks still run against the code they measure (a change of signature breaks them silently
otherwise): each one's core, tiny, on a SQLite file, and the database server's CPU as the interactive
bench reads it. Their figures are not looked at here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench import DEPLOYED, python
from bench.interactive_bench import Bench, Run, fresh_database, incident_walk, server_cpu, server_cpu_since
from bench.unit_bench import walk
from tests.support import pg_admin


async def test_unit_bench_walks_the_form_and_profiles_a_step(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path, "", "unit") as url:
        report = await walk(url, tmp_path, 2, 14, gap=0.001)  # each update after an idle moment

    lines = report.splitlines()
    assert lines[0].startswith("sqlite: 30 updates; CPU ")
    steps = lines[1].split(":", 1)[1].split()
    assert len(steps) == len(incident_walk()) == 15
    assert "statements an update: " in lines[2] and "INSERT" in lines[2]
    assert lines[3].startswith("  an update stored alone in the durable inbox") and "CPU " in lines[3]
    assert "cProfile of step 14's units" in report and "act_send" in report  # Gửi's unit, profiled


async def test_the_bot_started_as_deployed_walks_the_whole_form(tmp_path: Path) -> None:
    # `schoolbot run` as deploy/ starts it (python -OO: no docstrings, no asserts), polling the fake:
    # every step of the walk answered, the first principal's slowly, the second's as the bench does.
    bench = Bench(1, tmp_path, "", per_chat=0, settle=0.3)
    assert bench.python == python() == [sys.executable, *DEPLOYED] and "-OO" in DEPLOYED

    figures = await bench.run(Run("schoolbot", "quiet", "polling", "sqlite"))

    assert figures.failed == ""
    counts = bench.counts["schoolbot"]
    assert len(counts) == len(incident_walk()) and min(counts) >= 1
    assert (figures.offered, figures.missing, figures.unfinished) == (len(counts), 0, 0)


def test_the_database_servers_cpu_is_read_on_this_machine() -> None:
    # interactive_bench's "PostgreSQL server's CPU per update": a query's work on the server is counted
    # (the server's processes, read from /proc), and nothing when nothing ran.
    with pg_admin() as conn:
        before = server_cpu()
        if not before:
            pytest.skip("the PostgreSQL server's processes are not visible in /proc (a server elsewhere)")
        conn.execute("SELECT count(*) FROM generate_series(1, 4000000)").fetchone()
        spent = server_cpu_since(before)

    assert spent >= 0.05  # four million rows counted: well over five ticks of the server's CPU
    assert server_cpu_since(server_cpu()) < spent
