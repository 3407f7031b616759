"""Labels in the study area's language (``language: zh | en | bilingual`` in the area config).

One place decides how a text that exists in Chinese and English is shown, so maps, report,
workbook, atlas and console agree.
"""

from __future__ import annotations

__all__ = ["district_names", "is_unnamed", "pick", "primary", "selected_units_label", "split_bilingual", "unnamed"]


def pick(zh: str, en: str, language: str = "bilingual", *, sep: str = " / ") -> str:
    """The label of a text given in Chinese and English, in ``language``.

    Parameters
    ----------
    zh, en : str
        The Chinese and the English text (either may be empty: the other is used).
    language : {"zh", "en", "bilingual"}
        ``bilingual`` gives Chinese first, then English, joined by ``sep``.
    sep : str, default " / "

    Returns
    -------
    str

    Examples
    --------
    >>> pick("覆盖率", "coverage", "bilingual")
    '覆盖率 / coverage'
    >>> pick("覆盖率", "coverage", "en")
    'coverage'
    >>> pick("", "coverage", "zh")
    'coverage'
    """
    if language not in ("zh", "en", "bilingual"):
        raise ValueError(f"language {language!r}: use 'zh', 'en' or 'bilingual'")
    zh, en = (zh or "").strip(), (en or "").strip()
    if language == "zh":
        return zh or en
    if language == "en":
        return en or zh
    if zh and en and zh != en:
        return f"{zh}{sep}{en}"
    return zh or en


def primary(zh: str, en: str, language: str = "bilingual") -> str:
    """The one label of a text for a single-language field (a table's ``circle_label``).

    English for ``language="en"``, else Chinese; the other when the wanted one is empty.

    Examples
    --------
    >>> primary("15分钟健身圈", "15-minute fitness circle", "en")
    '15-minute fitness circle'
    >>> primary("15分钟健身圈", "15-minute fitness circle", "bilingual")
    '15分钟健身圈'
    """
    return pick(zh, en, "en" if language == "en" else "zh")


def district_names(config) -> tuple[str, str]:
    """``(name, name_en)`` of the whole-area row of every table, from the area configuration.

    ``district_name``/``district_name_en`` of the area file (defaults: its titles); objects without
    them (hand-made configurations in tests) get the area's name, else "whole area".

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> district_names(SimpleNamespace(district_name="Kallio", district_name_en=""))
    ('Kallio', 'Kallio')
    """
    fallback = str(getattr(config, "name", "") or "whole area")
    name = str(getattr(config, "district_name", "") or "")
    name_en = str(getattr(config, "district_name_en", "") or "")
    return (name or name_en or fallback), (name_en or name or fallback)


def unnamed(label_zh: str, label_en: str, language: str = "bilingual") -> str:
    """Placeholder name of an unnamed facility of a category, in the area's language.

    Examples
    --------
    >>> unnamed("图书馆", "library", "en")
    'library (unnamed)'
    >>> unnamed("图书馆", "library", "zh")
    '图书馆（未命名）'
    >>> unnamed("图书馆", "library", "bilingual")
    '图书馆（未命名） / library (unnamed)'
    """
    zh = f"{label_zh}{UNNAMED_ZH}" if label_zh else ""
    en = f"{label_en}{UNNAMED_EN}" if label_en else ""
    return pick(zh, en, language)


#: Endings of the placeholders of :func:`unnamed` (see :func:`is_unnamed`).
UNNAMED_ZH = "（未命名）"
UNNAMED_EN = " (unnamed)"


def is_unnamed(name) -> bool:
    """Whether ``name`` is empty or a placeholder made by :func:`unnamed` (never matched by name).

    Examples
    --------
    >>> is_unnamed("library (unnamed)"), is_unnamed("图书馆（未命名）"), is_unnamed("Oodi")
    (True, True, False)
    """
    text = str(name or "").strip()
    return (not text or text.endswith(UNNAMED_ZH) or text.endswith(UNNAMED_EN.strip())
            or text.endswith("(未命名)"))


def split_bilingual(text: str) -> tuple[str, str]:
    """Split a "中文 English" text at the first word written in Latin letters.

    Returns ``(zh, en)``; either may be empty.

    Examples
    --------
    >>> split_bilingual("覆盖率 covered_population / population")
    ('覆盖率', 'covered_population / population')
    >>> split_bilingual("time or distance")
    ('', 'time or distance')
    """
    text = str(text or "").strip()
    for i, ch in enumerate(text):
        if ch.isascii() and ch.isalnum():
            return text[:i].strip(), text[i:].strip()
    return text, ""


def selected_units_label(language: str = "bilingual") -> str:
    """Name of the all-units row when siting is restricted to some units (``siting.units``).

    Examples
    --------
    >>> selected_units_label("en")
    'selected units'
    """
    return pick("所选单元合计", "selected units", language)
