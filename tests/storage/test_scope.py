"""The scope contract every caller relies on: which schools a person sees, and the offices under an office."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.app import App
from storage import scope
from storage.models import Office, School, User
from storage.scope import Scope
from storage.text import fold

NOW = datetime(2026, 11, 1, tzinfo=UTC)

# Three deep: the province, two districts, a cluster under the first district; another province beside.
OFFICES = [
    ("SGD", None),
    ("PGD-A", "SGD"),
    ("CUM-A1", "PGD-A"),
    ("PGD-B", "SGD"),
    ("SGD-X", None),
]
SCHOOLS = [
    ("MN-A", "Mầm non An", "MN", "PGD-A"),
    ("TH-A1", "Tiểu học Bình", "TH", "CUM-A1"),
    ("THCS-A1", "THCS Cao", "THCS", "CUM-A1"),
    ("LC-B", "Liên cấp Dũng", "TH&THCS", "PGD-B"),
    ("MN-S", "Mầm non Sở", "MN", "SGD"),
    ("TH-X", "Tiểu học Xa", "TH", "SGD-X"),
]


@pytest.fixture(name="tree")
def tree_fixture(app: App) -> App:
    """The app with the offices and schools above."""
    with app.db.session() as s:
        ids: dict[str, int] = {}
        for code, parent in OFFICES:
            office = Office(code=code, name=code, kind="office", parent_id=ids[parent] if parent else None)
            s.add(office)
            s.flush()
            ids[code] = office.id or 0
        for code, name, level, office_code in SCHOOLS:
            s.add(
                School(code=code, name=name, name_folded=fold(name), level=level, office_id=ids[office_code])
            )
    return app


def office(s: Session, code: str) -> int:
    """The id of the office with this code."""
    found = s.exec(select(Office).where(Office.code == code)).one()
    return found.id or 0


def school(s: Session, code: str) -> School:
    """The school with this code."""
    return s.exec(select(School).where(School.code == code)).one()


def person(
    s: Session,
    role: str | None,
    office_code: str | None = None,
    school_code: str | None = None,
    levels: str = "",
) -> User:
    """A user (not stored: scope reads only the user's fields)."""
    return User(
        channel="console",
        external_id=f"{role}-{office_code}-{school_code}-{levels}",
        chat_id="1",
        role=role,
        office_id=office(s, office_code) if office_code else None,
        school_id=school(s, school_code).id if school_code else None,
        levels=levels,
        created_at=NOW,
    )


def codes(schools: list[School]) -> list[str]:
    """The schools' codes, in the order given."""
    return [sc.code for sc in schools]


def office_codes(s: Session, ids: set[int]) -> set[str]:
    """The codes of these offices."""
    return {o.code for o in s.exec(select(Office)) if o.id in ids}


def test_offices_under_an_office_are_it_and_every_office_below(tree: App) -> None:
    with tree.db.session() as s:
        under = {code: set(s.execute(scope.offices_under(office(s, code))).scalars()) for code, _ in OFFICES}
        assert office_codes(s, under["SGD"]) == {"SGD", "PGD-A", "CUM-A1", "PGD-B"}
        assert office_codes(s, under["PGD-A"]) == {"PGD-A", "CUM-A1"}
        assert office_codes(s, under["CUM-A1"]) == {"CUM-A1"}
        assert office_codes(s, under["SGD-X"]) == {"SGD-X"}


def test_a_cycle_in_the_offices_ends_the_walk(tree: App) -> None:
    with tree.db.session() as s:
        top = s.exec(select(Office).where(Office.code == "SGD")).one()
        top.parent_id = office(s, "CUM-A1")  # bad data: the province under its own cluster
        s.add(top)
        s.flush()
        under = set(s.execute(scope.offices_under(office(s, "PGD-A"))).scalars())
        assert office_codes(s, under) == {"SGD", "PGD-A", "CUM-A1", "PGD-B"}


def test_staff_see_the_schools_of_their_office_and_below_by_name(tree: App) -> None:
    with tree.db.session() as s:
        assert codes(scope.schools_seen_by(s, person(s, "leader", "SGD"))) == [
            "LC-B",
            "MN-A",
            "MN-S",
            "THCS-A1",
            "TH-A1",
        ]
        assert codes(scope.schools_seen_by(s, person(s, "officer", "PGD-A"))) == ["MN-A", "THCS-A1", "TH-A1"]
        assert codes(scope.schools_seen_by(s, person(s, "admin", "CUM-A1"))) == ["THCS-A1", "TH-A1"]
        assert codes(scope.schools_seen_by(s, person(s, "leader", "SGD-X"))) == ["TH-X"]


def test_an_officer_limited_to_levels_sees_only_those_and_combined_levels_match_each_part(tree: App) -> None:
    with tree.db.session() as s:
        seen = {
            levels: codes(scope.schools_seen_by(s, person(s, "officer", "SGD", levels=levels)))
            for levels in ("MN", "TH", "THCS", "mn, thcs", "THPT")
        }
        assert seen == {
            "MN": ["MN-A", "MN-S"],
            "TH": ["LC-B", "TH-A1"],
            "THCS": ["LC-B", "THCS-A1"],
            "mn, thcs": ["LC-B", "MN-A", "MN-S", "THCS-A1"],
            "THPT": [],
        }
        officer = person(s, "officer", "SGD", levels="MN")
        assert scope.of_user(officer) == Scope(office(s, "SGD"), ("MN",))
        assert scope.of_user(officer, by_level=False) == Scope(office(s, "SGD"))
        every_level = s.execute(scope.ids_seen_by(officer, by_level=False)).scalars()
        assert len(set(every_level)) == 5


def test_levels_limit_officers_only(tree: App) -> None:
    with tree.db.session() as s:
        leader = person(s, "leader", "PGD-A", levels="MN")  # the invites refuse this; the rule ignores it
        assert scope.levels_of(leader) == ()
        assert codes(scope.schools_seen_by(s, leader)) == ["MN-A", "THCS-A1", "TH-A1"]
        assert scope.levels_of(person(s, "officer", "PGD-A", levels=" th,MN ")) == ("TH", "MN")


def test_a_principal_sees_their_school_and_people_without_a_place_see_nothing(tree: App) -> None:
    with tree.db.session() as s:
        principal = person(s, "principal", "PGD-A", school_code="MN-A")
        assert codes(scope.schools_seen_by(s, principal)) == ["MN-A"]
        assert scope.of_user(principal) is None
        nobody = [
            person(s, "principal", "PGD-A"),  # a principal with no school: not even their office's
            person(s, None),  # not registered
            person(s, "officer"),  # staff with no office
        ]
        for user in nobody:
            assert scope.schools_seen_by(s, user) == []
            assert not any(scope.sees(s, user, sc.id or 0) for sc in s.exec(select(School)))


def test_sees_agrees_with_the_list_for_everyone_and_every_school(tree: App) -> None:
    with tree.db.session() as s:
        people = [
            person(s, "leader", "SGD"),
            person(s, "officer", "PGD-A", levels="THCS"),
            person(s, "officer", "PGD-B", levels="TH"),
            person(s, "principal", "PGD-B", school_code="LC-B"),
        ]
        for user in people:
            listed = {sc.id for sc in scope.schools_seen_by(s, user)}
            ids = set(s.execute(scope.ids_seen_by(user)).scalars())
            assert ids == listed
            for sc in s.exec(select(School)):
                assert scope.sees(s, user, sc.id or 0) == (sc.id in listed), (user.external_id, sc.code)
        assert not scope.sees(s, people[0], 99999)


def test_a_school_moved_to_another_office_is_seen_from_its_new_place_only(tree: App) -> None:
    with tree.db.session() as s:
        a, b = person(s, "officer", "PGD-A"), person(s, "officer", "PGD-B")
        moved = school(s, "TH-A1")
        assert scope.sees(s, a, moved.id or 0) and not scope.sees(s, b, moved.id or 0)
        moved.office_id = office(s, "PGD-B")
        s.add(moved)
        s.flush()
        assert not scope.sees(s, a, moved.id or 0) and scope.sees(s, b, moved.id or 0)
        assert codes(scope.schools_seen_by(s, b)) == ["LC-B", "TH-A1"]
        assert scope.schools_under_each(s)[office(s, "PGD-B")] == {school(s, "LC-B").id, moved.id}
        assert scope.sees(s, person(s, "leader", "SGD"), moved.id or 0)


def test_the_sweep_map_gives_each_office_what_its_scope_gives(tree: App) -> None:
    with tree.db.session() as s:
        for levels in [(), ("MN",), ("TH",), ("THCS", "MN")]:
            each = scope.schools_under_each(s, levels)
            for code, _ in OFFICES:
                wanted = set(s.execute(scope.school_ids(Scope(office(s, code), levels))).scalars())
                assert each.get(office(s, code), set()) == wanted, (code, levels)


def test_the_python_level_rule_is_the_sql_one(tree: App) -> None:
    with tree.db.session() as s:
        for levels in ("", "MN", "TH", "THCS", "MN,TH", "thcs , thpt"):
            in_sql = set(s.exec(select(School.level).where(scope.level_filter(scope.parse_levels(levels)))))
            in_python = {sc.level for sc in s.exec(select(School)) if scope.level_matches(levels, sc.level)}
            assert in_sql == in_python, levels


def test_a_scope_is_a_subquery_not_a_list_of_ids(tree: App) -> None:
    with tree.db.session() as s:
        user = person(s, "leader", "SGD")
        stmt = sa_select(col(School.code)).where(col(School.id).in_(scope.ids_seen_by(user)))
        compiled = stmt.compile(s.get_bind())
        assert len(compiled.params) <= 2  # the office id, however many schools it holds
        assert len(list(s.execute(stmt))) == 5


def test_sized_says_how_much_of_the_database_a_scope_holds(tree: App) -> None:
    with tree.db.session() as s:
        district = scope.sized(s, Scope(office(s, "PGD-A")))
        province = scope.sized(s, Scope(office(s, "SGD")))
        assert (district.schools, district.broad, district.everything) == (3, False, False)
        assert (province.schools, province.broad, province.everything) == (5, True, False)
        top = s.exec(select(Office).where(Office.code == "SGD-X")).one()
        top.parent_id = office(s, "SGD")
        s.add(top)
        s.flush()
        everything = scope.sized(s, Scope(office(s, "SGD")))
        assert (everything.schools, everything.everything) == (6, True)
        assert scope.in_scope(everything) == []
