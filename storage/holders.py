"""Who holds a lease: this process's name, and whether the process behind a name is gone.

A holder's name records where it runs and which process it is:

    web-1:48213:91234567:3f9a0c1e:a41b07
    host  pid   start    scope    random

`start` is the process's start time (clock ticks since boot, from /proc, "0" where there is no /proc)
and `scope` a digest of the host name, the boot and the PID namespace. A name from the same scope whose
pid no longer runs, or runs a process started at another time (a reused pid), belongs to a process that
died: its lease can be taken at once instead of waiting for it to run out. Any other name (another
machine or container, a name chosen by a test, an older format) is never judged gone: its lease runs out.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PROC = Path("/proc")
NODE_CHARS = 24  # the whole name stays within Lease.owner's 64 characters


@dataclass(frozen=True)
class Holder:
    """The parts of a holder's name."""

    pid: int
    start: str
    scope: str


def _read(path: Path) -> str:
    """A small kernel file's text, or "" when it cannot be read."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _link(path: Path) -> str:
    """Where a /proc link points (the PID namespace), or "" when it cannot be read."""
    try:
        return os.readlink(path)
    except OSError:
        return ""


def start_of(pid: int) -> str | None:
    """A running process's start time ("0" without /proc); None when it is not running (or a zombie)."""
    if not PROC.is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "0"
        return "0"
    stat = _read(PROC / str(pid) / "stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name before ")" may hold spaces
    if len(fields) < 20 or fields[0] in ("Z", "X"):  # a zombie is dead, only not yet reaped
        return None
    return fields[19]  # field 22 of proc(5): starttime


@cache
def scope() -> str:
    """This machine, boot and PID namespace, as 8 hex digits: pids mean the same thing within one scope."""
    parts = (
        os.uname().nodename,
        _read(PROC / "sys" / "kernel" / "random" / "boot_id"),
        _link(PROC / "self" / "ns" / "pid"),
    )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]


def new_owner() -> str:
    """A fresh holder name for this process (a new random part each call)."""
    pid = os.getpid()
    node = os.uname().nodename[:NODE_CHARS].replace(":", "-")
    return f"{node}:{pid}:{start_of(pid) or '0'}:{scope()}:{secrets.token_hex(3)}"


def parse(owner: str) -> Holder | None:
    """The pid, start and scope in a holder's name; None for a name in another form."""
    parts = owner.rsplit(":", 4)
    if len(parts) != 5 or not parts[1].isdigit() or not parts[2].isdigit() or len(parts[3]) != 8:
        return None
    return Holder(pid=int(parts[1]), start=parts[2], scope=parts[3])


def here(owner: str) -> bool:
    """Whether `owner` is a name of this scope, whose life `gone` can tell for certain."""
    holder = parse(owner)
    return holder is not None and holder.scope == scope() and holder.pid > 0


def gone(owner: str) -> bool:
    """Whether `owner` is a process of this scope that no longer runs (False whenever unsure)."""
    holder = parse(owner)
    if holder is None or holder.scope != scope() or holder.pid <= 0:
        return False
    running = start_of(holder.pid)
    if running is None:
        return True
    return holder.start != "0" and running != "0" and running != holder.start
