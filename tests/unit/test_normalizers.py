"""The normalizers package: Whisper's English normalizer, Whisper's basic one, and the per-language rules."""

import subprocess
import sys

import pytest
from whisper_normalizer.basic import BasicTextNormalizer as WhisperBasicTextNormalizer

from normalizers import (
    EnglishNumberNormalizer, EnglishSpellingNormalizer, EnglishTextNormalizer, all_languages, get_normalizer,
    get_language, get_target_normalizer,
)

# OpenAI Whisper's documented English behaviour: spelled-out numbers, currencies, ordinals, spellings, titles.
ENGLISH_NUMBERS = [
    ("two", "2"), ("thirty one", "31"), ("nineteen ninety nine", "1999"), ("twenty nineteen", "2019"),
    ("two point five million", "2500000"), ("$20 million", "$20000000"), ("€52.4 million", "€52400000"),
    ("two double o eight", "2008"), ("forty three thousand two hundred and sixty", "43260"),
    ("nineteen fifties", "1950s"), ("thirty first", "31st"), ("july third twenty twenty", "july 3rd 2020"),
    ("3.14", "3.14"), ("3 point 14", "3.14"), ("two point two five dollars", "$2.25"), ("ninety percent", "90%"),
    ("seventy six per cent", "76%"), ("double oh seven", "007"), ("nine double one", "911"),
    ("minus 500", "-500"), ("two dollars and seventy cents", "$2.70"), ("3 cents", "¢3"), ("$0.36", "¢36"),
    ("three and a half million", "3500000"), ("b747", "b 747"), ("10 th", "10th"),
]
ENGLISH_TEXT = [
    ("Let's", "let us"), ("he's like", "he is like"), ("she's been like", "she has been like"), ("10km", "10 km"),
    ("RC232", "rc 232"), ("Mr. Park visited Assoc. Prof. Kim Jr.", "mister park visited associate professor kim junior"),
    ("The colour of the theatre", "the color of the theater"), ("Hello, [noise] world (laughs)!", "hello world"),
]


@pytest.mark.parametrize("spoken, written", ENGLISH_NUMBERS)
def test_english_numbers(spoken, written):
    assert EnglishNumberNormalizer()(spoken) == written
    assert get_normalizer("en")(spoken) == written


@pytest.mark.parametrize("text, expected", ENGLISH_TEXT)
def test_english_text(text, expected):
    assert get_normalizer("english")(text) == expected
    assert EnglishTextNormalizer()(text) == expected


def test_english_spelling():
    assert EnglishSpellingNormalizer()("mobilisation") == "mobilization"
    assert EnglishSpellingNormalizer()("cancelation") == "cancellation"


MULTILINGUAL_SAMPLES = [
    "Hej, världen! Hur mår du idag?", "Größe und Straße (leise) [Musik]", "L'homme qu'il a vu — c'est ça…",
    "¿Dónde está la estación?", "Привет, мир: как дела?", "Καλημέρα κόσμε!", "Ærø og Øresund, 50 % rabat",
    "Jeśli łódź płynie...", "Ein «Zitat» & ein „Zitat“ – 3,5 km/h", "  mehrere   Leerzeichen\tund\nZeilen ",
]


@pytest.mark.parametrize("language", ["de", "sv", "fr", "es", "ru", "el", "da", "pl", "nl", "fi"])
def test_languages_without_rules_match_whisper_basic_normalizer(language):
    assert get_language(language).is_default
    ours, whisper = get_normalizer(language), WhisperBasicTextNormalizer()
    for text in MULTILINGUAL_SAMPLES:
        assert ours(text) == whisper(text).strip(), text
    whisper_no_diacritics = WhisperBasicTextNormalizer(remove_diacritics=True)
    for text in MULTILINGUAL_SAMPLES:
        assert get_normalizer(language, remove_diacritics=True)(text) == whisper_no_diacritics(text).strip(), text


def test_diacritics_are_kept_by_default_and_removed_on_request():
    assert get_normalizer("fr")("Café crème") == "café crème"
    assert get_normalizer("fr", remove_diacritics=True)("Café crème") == "cafe creme"
    with pytest.raises(ValueError, match="vowel signs"):
        get_normalizer("hi", remove_diacritics=True)


@pytest.mark.parametrize("language, variants, expected", [
    ("uk", ["П'ять", "п’ять", "пʼять", "«п'ять»"], "п'ять"),  # five
    ("uk", ["М'ясо!", "м’ясо"], "м'ясо"),  # meat
    ("be", ["Сям'я", "сям’я,"], "сям'я"),  # family
    ("uz", ["O'zbekiston", "Oʻzbekiston", "O‘zbekiston"], "o'zbekiston"),
    ("sw", ["Ng'ombe", "ng’ombe"], "ng'ombe"),  # cow
])
def test_apostrophe_is_part_of_the_word(language, variants, expected):
    normalize = get_normalizer(language)
    for text in variants:
        assert normalize(text) == expected, text
    assert WhisperBasicTextNormalizer()(variants[0]).split() != [expected]  # what the basic normalizer breaks


def test_quotes_around_ukrainian_words_still_go():
    assert get_normalizer("uk")("'Київ' — це місто.") == "київ це місто"


@pytest.mark.parametrize("language, text", [
    ("hi", "नमस्ते दुनिया"), ("ta", "வணக்கம் உலகம்"), ("bn", "আমি বাংলায় গান গাই"), ("th", "สวัสดีครับ"),
    ("ml", "നമസ്കാരം"), ("te", "నమస్కారం"), ("my", "မင်္ဂလာပါ"), ("km", "សួស្តី"), ("mr", "नमस्कार"),
])
def test_vowel_signs_are_kept(language, text):
    assert get_normalizer(language)(text + "!") == text
    assert WhisperBasicTextNormalizer()(text) != text  # the basic normalizer turns the signs into spaces


@pytest.mark.parametrize("language, pointed, plain", [
    ("ar", "كَتَبَ الوَلَدُ الدَّرْسَ", "كتب الولد الدرس"),  # the boy wrote the lesson
    ("he", "שָׁלוֹם עוֹלָם", "שלום עולם"),  # hello world
    ("fa", "کِتاب", "کتاب"),
])
def test_optional_vowel_points_are_dropped_without_splitting_words(language, pointed, plain):
    assert get_normalizer(language)(pointed) == get_normalizer(language)(plain) == plain


def test_turkish_and_azerbaijani_dotted_and_dotless_i():
    assert get_normalizer("tr")("İstanbul'a gittim") == "istanbul a gittim"
    assert get_normalizer("tr")("IĞDIR") == "ığdır"
    assert get_normalizer("az")("İLHAM") == "ilham"
    assert WhisperBasicTextNormalizer()("İstanbul") == "i stanbul"  # the bug this rule fixes
    assert get_normalizer("de")("IGEL") == "igel"  # other languages keep the usual I -> i


def test_persian_zero_width_non_joiner_and_arabic_letter_forms():
    normalize = get_normalizer("fa")
    assert normalize("می‌خواهم") == normalize("میخواهم") == "میخواهم"  # "I want", with and without ZWNJ
    assert normalize("كتاب") == "کتاب"  # Arabic kaf -> Persian keheh
    assert normalize("علي") == "علی"  # Arabic yeh -> Persian yeh


def test_malayalam_old_chillu_encoding_matches_atomic_chillu():
    assert get_normalizer("ml")("അവന്\u200d വന്നു") == get_normalizer("ml")("അവൻ വന്നു") == "അവൻ വന്നു"


CER_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue", "km", "bo"}


def test_metric_per_language():
    metrics = {code: get_normalizer(code).metric for code in all_languages()}
    assert {code for code, metric in metrics.items() if metric == "cer"} == CER_LANGUAGES
    assert len(metrics) == 100 and metrics["en"] == metrics["sv"] == metrics["hi"] == "wer"


def test_language_lookup():
    assert get_language("Swedish").code == get_language("<|sv|>").code == "sv"
    assert get_language("cantonese").code == "yue"
    with pytest.raises(ValueError, match="Did you mean 'swedish'"):
        get_language("swedsh")
    assert get_normalizer(None)("Hello, World!") == "hello world "  # Whisper's basic normalizer, untouched


@pytest.mark.parametrize("language, text, expected", [
    ("en", "It's the re-cover, isn't it?", "it's the re-cover isn't it"),
    ("en", "Pi is 3.14, about 1,000 of them at 10:30.", "pi is 3.14 about 1,000 of them at 10:30"),
    ("en", "\"Quoted\" words - and $5 (50%) at R&D!", "quoted words and $5 50% at r&d"),
    ("uk", "П’ять хвилин, будь ласка.", "п’ять хвилин будь ласка"),
    ("tr", "İstanbul'a Iğdır'dan.", "istanbul'a ığdır'dan"),
    ("hi", "नमस्ते, दुनिया।", "नमस्ते दुनिया"),
    ("fr", "L'homme, aujourd'hui.", "l'homme aujourd'hui"),
])
def test_training_targets_never_change_one_word_into_another(language, text, expected):
    assert get_target_normalizer(language, do_lower_case=True, do_remove_punctuation=True)(text) == expected


def test_training_targets_are_untouched_by_default():
    text = "It's Mr. Smith's \"Colour\" TV, 3.5 km."
    assert get_target_normalizer("en")(text) == text
    assert get_target_normalizer("en", do_lower_case=True)(text) == text.lower()


def test_command_line_shows_both_normalizations():
    out = subprocess.run(
        [sys.executable, "-m", "normalizers", "--language", "uk", "--do_remove_punctuation", "П'ять хвилин!"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.splitlines() == ["eval:   п'ять хвилин", "target: П'ять хвилин"]
    assert "metric WER" in out.stderr
    listing = subprocess.run([sys.executable, "-m", "normalizers", "--list"], capture_output=True, text=True, check=True)
    assert "ukrainian" in listing.stdout and "chinese\tcer" in listing.stdout
