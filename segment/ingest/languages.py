"""Language names and codes -> ISO 639-1, for the languages US health systems meet most.

Each row: ISO 639-1, ISO 639-2/B, ISO 639-2/T and 639-3 codes, English and native names.
The table covers the languages the Census Bureau reports most often in US homes plus
the common interpreter-service languages; anything else is reported as unknown rather
than guessed.
"""

from __future__ import annotations

_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("en", ("eng", "english")),
    ("es", ("spa", "spanish", "español", "espanol", "castilian")),
    ("zh", ("chi", "zho", "cmn", "yue", "chinese", "mandarin", "cantonese", "中文", "zh-hans",
            "zh-hant")),
    ("tl", ("tgl", "fil", "tagalog", "filipino")),
    ("vi", ("vie", "vietnamese", "tiếng việt", "tieng viet")),
    ("ar", ("ara", "arb", "arabic", "العربية")),
    ("fr", ("fre", "fra", "french", "français", "francais")),
    ("ko", ("kor", "korean", "한국어")),
    ("ru", ("rus", "russian", "русский")),
    ("de", ("ger", "deu", "german", "deutsch")),
    ("ht", ("hat", "haitian", "haitian creole", "kreyol", "kreyòl", "creole")),
    ("pt", ("por", "portuguese", "português", "portugues")),
    ("hi", ("hin", "hindi")),
    ("it", ("ita", "italian", "italiano")),
    ("pl", ("pol", "polish", "polski")),
    ("ja", ("jpn", "japanese", "日本語")),
    ("fa", ("per", "fas", "pes", "persian", "farsi", "dari", "prs")),
    ("ur", ("urd", "urdu")),
    ("gu", ("guj", "gujarati")),
    ("el", ("gre", "ell", "greek")),
    ("bn", ("ben", "bengali", "bangla")),
    ("pa", ("pan", "punjabi", "panjabi")),
    ("te", ("tel", "telugu")),
    ("ta", ("tam", "tamil")),
    ("km", ("khm", "khmer", "cambodian")),
    ("hy", ("arm", "hye", "armenian")),
    ("he", ("heb", "hebrew")),
    ("so", ("som", "somali")),
    ("am", ("amh", "amharic")),
    ("ne", ("nep", "npi", "nepali")),
    ("my", ("bur", "mya", "burmese")),
    ("lo", ("lao",)),
    ("th", ("tha", "thai")),
    ("uk", ("ukr", "ukrainian")),
    ("sw", ("swa", "swh", "swahili")),
    ("ps", ("pus", "pashto")),
    ("ti", ("tir", "tigrinya")),
    ("sr", ("srp", "serbian")),
    ("hr", ("hrv", "croatian")),
    ("bs", ("bos", "bosnian")),
    ("ro", ("rum", "ron", "romanian")),
    ("nl", ("dut", "nld", "dutch")),
    ("sq", ("alb", "sqi", "albanian")),
    ("tr", ("tur", "turkish")),
    ("id", ("ind", "indonesian")),
    ("ml", ("mal", "malayalam")),
    ("mr", ("mar", "marathi")),
    ("yi", ("yid", "yiddish")),
    ("sm", ("smo", "samoan")),
    ("to", ("ton", "tongan")),
    ("ku", ("kur", "kurdish")),
    ("uz", ("uzb", "uzbek")),
    ("sv", ("swe", "swedish")),
    ("no", ("nor", "nob", "norwegian")),
    ("da", ("dan", "danish")),
    ("fi", ("fin", "finnish")),
    ("hu", ("hun", "hungarian")),
    ("cs", ("cze", "ces", "czech")),
    ("sk", ("slo", "slk", "slovak")),
    ("lt", ("lit", "lithuanian")),
    ("yo", ("yor", "yoruba")),
    ("ig", ("ibo", "igbo")),
    ("ha", ("hau", "hausa")),
    ("ms", ("may", "msa", "malay")),
    ("mn", ("mon", "mongolian")),
    ("ka", ("geo", "kat", "georgian")),
    ("az", ("aze", "azerbaijani")),
    ("kk", ("kaz", "kazakh")),
    ("ff", ("ful", "fulah", "fula", "fulani")),
    ("rw", ("kin", "kinyarwanda")),
    ("rn", ("run", "kirundi")),
    ("ln", ("lin", "lingala")),
    ("om", ("orm", "oromo")),
    ("nv", ("nav", "navajo")),
)

#: lower-case name or code -> ISO 639-1
LANGUAGE_LOOKUP: dict[str, str] = {}
for _code, _aliases in _ROWS:
    LANGUAGE_LOOKUP[_code] = _code
    for _alias in _aliases:
        LANGUAGE_LOOKUP.setdefault(_alias, _code)
# "hmong" has no ISO 639-1 code; it is reported as unknown rather than mis-coded.
