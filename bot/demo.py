"""A demo district: one province, one district office, a few schools, three console users."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from storage import queries as q
from storage.models import Office, School, User
from storage.text import fold, nfc

PROVINCE = ("SGD-DEMO", "Sở GD&ĐT Điện Biên (demo)")
DISTRICT = ("PGD-DEMO", "Phòng GD&ĐT huyện Điện Biên Đông (demo)")
SCHOOLS = (
    ("MN-HOABAN", "Trường Mầm non Hoa Ban", "MN"),
    ("TH-THITRAN", "Trường Tiểu học Thị Trấn", "TH"),
    ("THCS-PUNHI", "Trường PTDTBT THCS Pú Nhi", "THCS"),
    ("THCS-TTDBD", "Trường THCS Thị Trấn Điện Biên Đông", "THCS"),
    ("THTHCS-NAMAI", "Trường TH&THCS Na Mai", "TH&THCS"),
)
USERS = (
    ("principal", "Cô Lò Thị Lan", "principal", "THCS-PUNHI"),
    ("officer", "Anh Nguyễn Văn Minh", "officer", None),
    ("leader", "Ông Trần Văn Hùng", "leader", None),
)


def seed_demo(s: Session, now: datetime) -> None:
    """Create the demo organisation and users; running it again changes nothing."""
    province = q.office_by_code(s, PROVINCE[0]) or Office(
        code=PROVINCE[0], name=nfc(PROVINCE[1]), kind="province"
    )
    s.add(province)
    s.flush()
    district = q.office_by_code(s, DISTRICT[0]) or Office(
        code=DISTRICT[0], name=nfc(DISTRICT[1]), kind="district", parent_id=province.id
    )
    s.add(district)
    s.flush()
    for code, name, level in SCHOOLS:
        if q.school_by_code(s, code) is None:
            s.add(
                School(
                    code=code, name=nfc(name), name_folded=fold(name), level=level, office_id=district.id or 0
                )
            )
    s.flush()
    for external_id, display, role, school_code in USERS:
        if q.get_user(s, "console", external_id) is not None:
            continue
        school = q.school_by_code(s, school_code) if school_code else None
        s.add(
            User(
                channel="console",
                external_id=external_id,
                chat_id=external_id,
                display_name=display,
                role=role,
                school_id=school.id if school else None,
                office_id=school.office_id if school else district.id,
                created_at=now,
            )
        )
