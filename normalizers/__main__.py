"""Show what the normalizers do: python -m normalizers --language uk "П'ять хвилин!" (or lines on stdin)."""

import argparse
import sys

from . import all_languages, get_normalizer, get_target_normalizer


def print_special_languages() -> None:
    print("code\tname\tmetric\tmarks\tapostrophe\tcasing\tzero-width\tchar map")
    for rules in all_languages().values():
        if rules.code == "en" or not rules.is_default or rules.metric != "wer":
            print("\t".join([
                rules.code, rules.name + (" (Whisper EnglishTextNormalizer)" if rules.code == "en" else ""), rules.metric, rules.marks, "letter" if rules.apostrophe_is_letter else "-",
                "turkic" if rules.turkic_casing else "-", "drop" if rules.drop_zero_width else "-",
                " ".join(f"{a}={b}" for a, b in rules.char_map) or "-",
            ]))
    print(f"\n{len(all_languages())} languages; the others use Whisper's basic normalizer and WER.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("text", nargs="*", help="text to normalize (default: read lines from stdin)")
    parser.add_argument("--language", "-l", help="Whisper language code or name (default: Whisper's basic normalizer)")
    parser.add_argument("--remove_diacritics", action="store_true")
    parser.add_argument("--do_lower_case", action="store_true", help="also show the training target with this")
    parser.add_argument("--do_remove_punctuation", action="store_true", help="also show the training target with this")
    parser.add_argument("--list", action="store_true", help="list the languages with special rules")
    args = parser.parse_args()
    if args.list:
        return print_special_languages()
    try:
        normalization = get_normalizer(args.language, remove_diacritics=args.remove_diacritics)
    except ValueError as error:
        raise SystemExit(f"error: {error}")
    show_target = args.do_lower_case or args.do_remove_punctuation
    target = get_target_normalizer(args.language, args.do_lower_case, args.do_remove_punctuation)
    print(f"# {normalization.language.name if args.language else 'basic'}: metric {normalization.metric.upper()}",
          file=sys.stderr)
    for line in args.text or (line.rstrip("\n") for line in sys.stdin):
        print(f"eval:   {normalization(line)}")
        if show_target:
            print(f"target: {target(line)}")


if __name__ == "__main__":
    main()
