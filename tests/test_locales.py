"""Every user-visible sentence lives in locales/, in both languages, and every key the code uses exists."""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def keys(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(keys(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def load(lang: str) -> dict[str, str]:
    return keys(tomllib.loads((ROOT / "locales" / f"{lang}.toml").read_text(encoding="utf-8")))


def test_both_locales_have_the_same_keys() -> None:
    vi, en = load("vi"), load("en")
    assert sorted(set(vi) ^ set(en)) == []


def test_both_locales_use_the_same_fields_in_each_sentence() -> None:
    vi, en = load("vi"), load("en")

    def fields(s: str) -> list[str]:
        return sorted(f for _, f, _, _ in string.Formatter().parse(s) if f)

    assert [k for k in vi if fields(vi[k]) != fields(en[k])] == []


def test_vietnamese_is_written_with_diacritics() -> None:
    vi = load("vi")
    assert "Báo cáo nhanh sự cố" in vi.values()
    assert sum(1 for v in vi.values() if re.search(r"[ăâđêôơưáàảãạếềểễệốồổỗộớờởỡợứừửữự]", v.lower())) > 50


def code_keys() -> set[str]:
    found: set[str] = set()
    pattern = re.compile(r"""(?:\bt|ctx\.t|_for\([^)]*\))\(\s*["']([a-z_]+(?:\.[a-z_]+)+)["']""")
    step = re.compile(r"""(?:Step|Option)\([^)]*?["']([a-z]+\.[a-z_.]+)["']""")
    for folder in ("handlers", "bot"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found |= set(pattern.findall(text)) | set(step.findall(text))
            found |= {
                m
                for m in re.findall(
                    r"""["']((?:menu|cmd|form|btn|error|reg|help|lang|incident)\.[a-z_]+)["']""", text
                )
            }
    return found


def test_every_key_the_code_names_exists() -> None:
    vi = load("vi")
    missing = sorted(k for k in code_keys() if k not in vi and not any(v.startswith(k + ".") for v in vi))
    assert missing == []


def test_step_prompts_have_short_labels_for_the_review_screen() -> None:
    from handlers.router import build_router

    vi = load("vi")
    for form in build_router().engine.forms.values():
        for step in form.steps:
            assert step.prompt in vi and step.prompt + "_short" in vi, step.key
            for option in step.options:
                assert option.label in vi, option.label


def test_roles_and_help_for_every_role() -> None:
    from storage.models import ROLES

    vi = load("vi")
    for role in ROLES:
        assert f"role.{role}" in vi and f"help.{role}" in vi and f"reg.ok.{role}" in vi


def test_no_vietnamese_sentence_is_hard_coded_in_python() -> None:
    viet = re.compile(
        r"""["'][^"'\n]*[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ][^"'\n]*["']""", re.I
    )
    offenders = []
    for folder in ("handlers", "bot", "storage"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name in ("demo.py", "config.py") or "migrations" in path.parts:
                continue  # demo data and configuration defaults are data, not interface text
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                stripped = line.strip()
                if stripped.startswith(("#", '"""')) or "replace(" in line:
                    continue
                if viet.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}")
    assert offenders == []


def test_callback_data_fits_in_64_bytes() -> None:
    from handlers.forms import Action, button
    from storage.models import Draft

    worst = Draft(id=2**31, user_id=1, form="incident", step="x", token="t", version=99_999)
    assert len(button(worst, Action.ANSWER, "yesterday").encode()) <= 64
    assert len(f"k:{2**31}".encode()) <= 64
