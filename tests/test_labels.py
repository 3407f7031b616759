"""Labels follow the area's language, and the config refuses unknown languages."""

import pytest

from accessibility._errors import ConfigError
from accessibility.config import load_area
from accessibility.labels import pick


@pytest.mark.parametrize(("language", "expected"), [("zh", "全区"), ("en", "District"),
                                                    ("bilingual", "全区 / District")])
def test_pick(language, expected):
    assert pick("全区", "District", language) == expected


def test_pick_missing_side_and_bad_language():
    assert pick("", "District", "zh") == "District"
    assert pick("全区", "", "en") == "全区"
    assert pick("同", "同", "bilingual") == "同"
    with pytest.raises(ValueError, match="language"):
        pick("a", "b", "fr")


def test_config_language(root):
    cfg = load_area(root / "config/areas/jiangbei.yaml", check_files=False)
    assert cfg.language == "bilingual"
    assert load_area(root / "config/areas/jiangbei.yaml", check_files=False,
                     overrides={"language": "en"}).language == "en"
    with pytest.raises(ConfigError, match="key 'language' is 'fr'"):
        load_area(root / "config/areas/jiangbei.yaml", check_files=False, overrides={"language": "fr"})
