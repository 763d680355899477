"""A large organisation in one go (bulk inserts), for the outbox's wave tests and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import col

from storage.db import Database
from storage.models import Office, School, User
from storage.text import fold

FIRST_CHAT = 5_000_000  # Telegram chat ids of the generated principals start here


@dataclass(frozen=True)
class Seeded:
    """What was made: the schools' ids and their principals' chat ids, in the same order."""

    province_id: int
    district_ids: list[int]
    school_ids: list[int]
    chats: list[int]


def seed_wave(
    db: Database,
    schools: int,
    now: datetime,
    *,
    districts: int = 10,
    channel: str = "telegram",
    first_chat: int = FIRST_CHAT,
    locale: str = "vi",
) -> Seeded:
    """A province with `districts` offices and `schools` schools, each with one registered principal."""
    with db.session() as s:
        province = Office(code="SGD-WAVE", name="Sở GD&ĐT Thử tải", kind="province")
        s.add(province)
        s.flush()
        offices = [
            Office(
                code=f"PGD-W{i:03d}",
                name=f"Phòng GD&ĐT huyện Thử {i}",
                kind="district",
                parent_id=province.id,
            )
            for i in range(districts)
        ]
        s.add_all(offices)
        s.flush()
        rows = [
            {
                "code": f"W{i:06d}",
                "name": f"Trường Tiểu học Thử Tải {i:05d}",
                "name_folded": fold(f"Trường Tiểu học Thử Tải {i:05d}"),
                "level": "TH",
                "office_id": offices[i % districts].id,
            }
            for i in range(schools)
        ]
        for i in range(0, len(rows), 500):
            s.execute(insert(School), rows[i : i + 500])
        school_ids = [
            school_id or 0
            for school_id in s.scalars(
                select(col(School.id)).where(col(School.code).like("W%")).order_by(col(School.code))
            )
        ]
        users: list[dict[str, Any]] = [
            {
                "channel": channel,
                "external_id": str(first_chat + i),
                "chat_id": str(first_chat + i),
                "display_name": f"Hiệu trưởng {i}",
                "role": "principal",
                "school_id": school_id,
                "office_id": offices[i % districts].id,
                "locale": locale,
                "blocked": False,
                "menu": {},
                "created_at": now,
            }
            for i, school_id in enumerate(school_ids)
        ]
        for i in range(0, len(users), 500):
            s.execute(insert(User), users[i : i + 500])
        return Seeded(
            province.id or 0,
            [o.id or 0 for o in offices],
            school_ids,
            [first_chat + i for i in range(len(school_ids))],
        )
