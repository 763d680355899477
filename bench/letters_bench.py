"""Letters for a province: `schoolbot invites --office CODE --all-schools --letters` at 1,500 schools.

`.venv/bin/python -m bench.letters_bench [--schools 1500]`: a fresh SQLite database in a temporary folder
(the real migrations), one province office with that many schools, then the real command line; prints
the wall time, the peak memory of the process (ru_maxrss) and the file sizes.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app
from storage import migrate
from storage.db import Database
from storage.models import Office, School


def seed(url: str, schools: int) -> None:
    db = Database(url)
    migrate.upgrade(db)
    with db.session() as s:
        office = Office(code="SGD-BENCH", name="Sở GD&ĐT tỉnh Thử Nghiệm", kind="province")
        s.add(office)
        s.flush()
        levels = ("MN", "TH", "THCS", "THPT", "TH&THCS")
        for n in range(schools):
            name = f"Trường Thử Nghiệm Số {n:04d}"
            s.add(
                School(
                    code=f"S{n:05d}",
                    name=name,
                    name_folded=name.lower(),
                    level=levels[n % 5],
                    office_id=office.id or 0,
                )
            )
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schools", type=int, default=1500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'bench.db'}"
        seed(url, args.schools)
        (root / "config.toml").write_text(f'database_url = "{url}"\n\n[telegram]\nusername = "bench_bot"\n')
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        result = CliRunner().invoke(
            app,
            ["invites", "--office", "SGD-BENCH", "--all-schools", "--letters", str(root / "l.docx"),
             "--config", str(root / "config.toml")],
        )  # fmt: skip
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert result.exit_code == 0, result.output
        print(result.stdout.strip())
        print(
            f"{args.schools} schools: {took:.1f} s, peak RSS {peak / 1024:.0f} MB (before the command "
            f"{before / 1024:.0f} MB), letters {(root / 'l.docx').stat().st_size / 1e6:.1f} MB, "
            f"CSV {(root / 'l.csv').stat().st_size / 1e3:.0f} KB"
        )


if __name__ == "__main__":
    main()
