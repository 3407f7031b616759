"""Labels in the study area's language (``language: zh | en | bilingual`` in the area config).

One place decides how a text that exists in Chinese and English is shown, so maps, report,
workbook, atlas and console agree.
"""

from __future__ import annotations

__all__ = ["pick"]


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
