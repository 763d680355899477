"""Parts under a size limit, checked with sizes: groups kept whole when they fit, every entry placed once."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from storage.zipparts import Entry, capacity, plan_parts, write_zip


def entry(name: str, size: int) -> Entry:
    return Entry(name, size)  # planned by size alone: never written


def test_groups_stay_whole_when_they_fit() -> None:
    groups = [[entry("a/1", 300), entry("a/2", 300)], [entry("b/1", 500)], [entry("c/1", 200)]]
    room = 1100  # a: 892 bytes with headers; b and c: 992
    plan = plan_parts(groups, room)
    assert [[e.name for e in part] for part in plan.parts] == [["a/1", "a/2"], ["b/1", "c/1"]]
    assert all(sum(e.room for e in part) <= room for part in plan.parts)
    assert not plan.too_large


def test_a_group_larger_than_a_part_is_spread_in_order_and_an_oversize_entry_is_set_apart() -> None:
    big = [entry(f"big/{n}", 250) for n in range(5)]  # 400 bytes each with headers
    groups = [[entry("a/1", 100)], big, [entry("huge/video", 5000)], [entry("c/1", 100)]]  # 246 each
    room = 1100
    plan = plan_parts(groups, room)
    placed = [e.name for part in plan.parts for e in part]
    assert placed == ["a/1", *(e.name for e in big), "c/1"]  # every entry once, in order
    assert [e.name for e in plan.too_large] == ["huge/video"]
    assert all(sum(e.room for e in part) <= room for part in plan.parts)
    assert [len(p) for p in plan.parts] == [3, 2, 2]  # a/1 + big/0 + big/1, big/2 + big/3, big/4 + c/1


def test_four_hundred_megabytes_in_fifty_megabyte_parts_by_sizes_alone() -> None:
    """A 400 MB month (sizes only, nothing written): every part under the limit, nothing lost."""
    limit = 50 * 1024 * 1024
    mb = 1024 * 1024
    groups = [
        [
            entry(f"school {n}/Bài viết.docx", mb // 2),
            *(entry(f"school {n}/{k:02d}.jpg", 4 * mb) for k in range(3)),
        ]
        for n in range(30)
    ]
    groups.append([entry("video school/Video 01.mp4", 60 * mb)])  # larger than any part
    plan = plan_parts(groups, capacity(limit))
    room = capacity(limit)
    assert room is not None and room < limit
    assert all(sum(e.room for e in part) <= room for part in plan.parts)
    assert sum(len(part) for part in plan.parts) == 30 * 4
    assert [e.name for e in plan.too_large] == ["video school/Video 01.mp4"]
    assert [len(p) for p in plan.parts] == [12] * 10  # 12.5 MB an article, 3 whole articles a part


def test_written_parts_are_under_the_limit_and_hold_every_file(tmp_path: Path) -> None:
    files = []
    for n in range(6):
        path = tmp_path / f"photo{n}.jpg"
        path.write_bytes(os.urandom(150_000 + n * 10_000))
        files.append(path)
    groups = [[Entry.file(f"Trường {n // 2}/Ảnh {n}.jpg", path) for n, path in enumerate(files)]]
    limit = 400_000
    plan = plan_parts(groups, capacity(limit))
    seen = {}
    for number, part in enumerate(plan.parts, 1):
        out = tmp_path / f"part{number}.zip"
        size = write_zip(out, part)
        assert size < limit
        with zipfile.ZipFile(out) as archive:
            assert archive.testzip() is None
            for info in archive.infolist():
                assert info.flag_bits & 0x800  # Vietnamese names marked UTF-8
                seen[info.filename] = archive.read(info)
    assert len(plan.parts) > 1
    assert seen == {f"Trường {n // 2}/Ảnh {n}.jpg": path.read_bytes() for n, path in enumerate(files)}


def test_no_limit_is_one_part() -> None:
    groups = [[entry("a", 10)], [entry("b", 10)]]
    assert [[e.name for e in p] for p in plan_parts(groups, None).parts] == [["a", "b"]]
