"""Holder names: this process is alive, a process that exited is gone, anything unsure is not."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from storage import holders
from storage import queries as q
from storage.db import Database

NAME_OF_A_CHILD = "from storage.holders import new_owner; print(new_owner())"


def dead_owner() -> str:
    """The holder name of a real process that has since exited."""
    done = subprocess.run([sys.executable, "-c", NAME_OF_A_CHILD], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_this_process_is_not_gone_and_a_process_that_exited_is() -> None:
    mine = holders.new_owner()
    assert len(mine) <= 64 and holders.parse(mine) is not None
    assert not holders.gone(mine)
    assert holders.gone(dead_owner())


def test_a_reused_pid_with_another_start_time_is_gone() -> None:
    me = holders.parse(holders.new_owner())
    assert me is not None
    if me.start == "0":  # no /proc here: the start time cannot tell
        return
    older = f"host:{me.pid}:{int(me.start) - 1}:{me.scope}:abcdef"
    assert holders.gone(older)


def test_names_from_elsewhere_or_in_another_form_are_never_judged_gone() -> None:
    child = holders.parse(dead_owner())
    assert child is not None
    elsewhere = f"web-2:{child.pid}:{child.start}:{'0' * 8 if holders.scope() != '0' * 8 else '1' * 8}:abcdef"
    for name in (elsewhere, "process-1", "inline-123-abc", "", "a:b:c:d:e"):
        assert not holders.gone(name), name


def test_the_lease_of_a_dead_holder_is_taken_at_once(database_url: str) -> None:
    db = Database(database_url)
    now = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    later = now + timedelta(minutes=5)
    dead, alive = dead_owner(), holders.new_owner()
    try:
        with db.session() as s:
            assert q.take_lease(s, "sender", dead, now, later)
            assert not q.take_lease(s, "sender", alive, now, later)  # without asking, it waits
        with db.session() as s:
            assert q.take_lease(s, "sender", alive, now, later, gone=holders.gone)
            holder = q.lease_holder(s, "sender")
            assert holder is not None and holder.owner == alive
            assert not q.take_lease(s, "sender", holders.new_owner(), now, later, gone=holders.gone)
    finally:
        db.dispose()
