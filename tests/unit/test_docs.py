"""The README and docs/ against the code they describe.

- README.md stays a short front page (at most 200 lines); no line of it or of docs/*.md is over 120 characters.
- Every command the docs quote (in shell code blocks and in inline code) names an entry point that exists, and every
  `--flag` quoted with it is one that entry point's `--help` lists: `python run_eval.py ...`,
  `python run_speech_recognition_seq2seq_streaming.py ...`, `python -m whisper_finetuning.X ...`,
  `python -m normalizers ...`, `python benchmarks/X.py ...`, and `bash X.sh ...` where that launcher forwards its
  arguments to one of those (scripts/run.sh, the demo launchers). A `--flag` quoted on its own in inline code must be
  a flag of one of the quoted entry points. Repository paths quoted in commands (configs/..., scripts/...) exist.
- docs/layout.md names every module file of the kit.
- Relative links in README.md and docs/ point at files (and headings) that exist.

Each entry point's `--help` runs once per session, in a subprocess of this interpreter with HF_HUB_OFFLINE=1 (all of
them in one, which imports torch and transformers once; an entry point that fails there runs alone).
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
LAYOUT = DOCS / "layout.md"
MAX_README_LINES = 200
MAX_LINE_LENGTH = 120

# Launchers that pass their extra arguments on to a Python entry point. (configs/test.sh and scripts/test.sh pass
# theirs to pytest, whose flags are not the kit's: only their existence is checked.)
TRAINING = ("script", "run_speech_recognition_seq2seq_streaming.py")
DEMO = ("module", "whisper_finetuning.demo")
FORWARDS = {
    "scripts/run.sh": TRAINING,
    "scripts/demo.sh": DEMO,
    "configs/demo.sh": DEMO,
}
# Python packages whose modules are the kit's commands; other `python -m` modules (pytest, pip) are not checked.
KIT_PACKAGES = ("whisper_finetuning", "normalizers")
# Flags of other programs that the docs quote in prose (sbatch, torchrun); never flags of the kit.
FOREIGN_FLAGS = {"--nodes", "--nproc_per_node", "--standalone"}
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
REPO_PATH = re.compile(r"^(configs|scripts|benchmarks|tests|docs|whisper_finetuning|normalizers)/[\w./-]*$")
FLAG = re.compile(r"--[A-Za-z][\w-]*")


def doc_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("**/*.md"))]


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# ---------------------------------------------------------------------------------------------------------------
# Reading commands out of Markdown


def snippets(text: str) -> list[tuple[int, str, bool]]:
    """(line number, text, from a code block) for each shell command line of the fenced code blocks (shell or no
    language; continuation lines joined, comments dropped) and each inline code span outside code blocks."""
    found = []
    paragraphs: list[tuple[int, list[str]]] = [(1, [])]  # prose between blank lines and code blocks
    fence = None
    pending, pending_line = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        marker = re.match(r"^\s*(```|~~~)\s*([\w+-]*)", line)
        if fence is None and marker:
            fence = (marker.group(1), marker.group(2).lower())
            paragraphs.append((number + 1, []))
            continue
        if fence is not None:
            if line.strip().startswith(fence[0]):
                if pending:
                    found.append((pending_line, pending, True))
                fence, pending = None, ""
                paragraphs.append((number + 1, []))
                continue
            if fence[1] not in SHELL_LANGUAGES:
                continue
            if not pending:
                pending_line = number
            stripped = line.rstrip()
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            found.append((pending_line, pending + stripped, True))
            pending = ""
            continue
        if not line.strip():
            paragraphs.append((number + 1, []))
        else:
            paragraphs[-1][1].append(line)
    # Inline code may run across a line break within a paragraph.
    for first, lines in paragraphs:
        paragraph = "\n".join(lines)
        for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", paragraph):
            number = first + paragraph.count("\n", 0, match.start())
            found.append((number, " ".join(match.group(1).split()), False))
    return sorted(found)


def tokens_of(command: str) -> list[str]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote in prose: fall back to words
        return command.split("#")[0].split()


def simple_commands(command: str) -> list[list[str]]:
    """The simple commands of a shell line: split at &&, ||, ;, | and parentheses."""
    commands, current = [], []
    for token in tokens_of(command):
        if token in SEPARATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    if current:
        commands.append(current)
    return commands


def entry_point(words: list[str]) -> tuple[tuple[str, str] | None, list[str], str | None]:
    """(entry point, its arguments, what the command names) for a simple command, or (None, [], None) when it
    runs nothing of the kit. An entry point is ("script", path) or ("module", dotted name); a launcher that
    forwards to one is resolved to it."""
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):  # VAR=value before the command
        words = words[1:]
    if not words:
        return None, [], None
    program, rest = words[0], words[1:]
    if re.fullmatch(r"python(3(\.\d+)?)?", Path(program).name):
        if rest[:1] == ["-m"] and len(rest) > 1:
            module = rest[1]
            if module.split(".")[0] not in KIT_PACKAGES:
                return None, [], None
            return ("module", module), rest[2:], f"python -m {module}"
        if rest and rest[0].endswith(".py"):
            return ("script", rest[0]), rest[1:], rest[0]
        return None, [], None
    if program == "bash" and rest and rest[0].endswith(".sh"):
        return ("shell", rest[0]), rest[1:], rest[0]
    if re.fullmatch(r"(\./)?(run_\w+|benchmarks/\w+)\.py", program):  # `run_eval.py --backend ctranslate2` in prose
        return ("script", program.removeprefix("./")), rest, program
    return None, [], None


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__main__.py"):
        if candidate.is_file():
            return candidate
    return None


def flags_in(arguments: list[str]) -> list[str]:
    found = []
    for argument in arguments:
        argument = argument.strip("[]")
        match = FLAG.match(argument)
        if match and argument.startswith("--"):
            found.append(match.group(0))
    return found


# ---------------------------------------------------------------------------------------------------------------
# What each entry point accepts: its --help, once per session


def help_command(entry: tuple[str, str]) -> list[str]:
    kind, target = entry
    return [sys.executable, "-m", target, "--help"] if kind == "module" else [sys.executable, target, "--help"]


def help_environment() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "120"}


# Runs several entry points' --help in one interpreter, so torch and transformers are imported once (each alone
# takes seconds to import); prints {"kind:target": [exit code, stdout]} as JSON. An entry point that fails here is
# run again alone (help_alone), which gives its own error.
BATCH_HELP = """
import contextlib, io, json, runpy, sys
results = {}
for key in sys.argv[1:]:
    kind, target = key.split(":", 1)
    out, code, path = io.StringIO(), 0, list(sys.path)
    sys.argv = [target, "--help"]
    try:
        with contextlib.redirect_stdout(out):
            if kind == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                sys.path.insert(0, target.rpartition("/")[0] or ".")
                runpy.run_path(target, run_name="__main__")
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        code = -1
    sys.path[:] = path
    results[key] = [code, out.getvalue()]
print("\\n" + json.dumps(results))
"""


def parse_help(stdout: str) -> frozenset[str] | str:
    """The flags a --help output declares (argparse's option lines, not its prose)."""
    flags = set()
    for line in stdout.splitlines():
        if re.match(r"^ {1,4}-", line):  # "  --flag VALUE, --flag-alias VALUE   help text"
            flags.update(FLAG.findall(re.split(r"\s{2,}", line.strip())[0]))
    return frozenset(flags) if flags else "--help lists no flags"


def help_alone(entry: tuple[str, str]) -> frozenset[str] | str:
    try:
        result = subprocess.run(help_command(entry), cwd=ROOT, env=help_environment(), capture_output=True,
                                text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "--help did not finish in 600 s"
    if result.returncode != 0:
        return f"--help exited with {result.returncode}: {result.stderr.strip()[-300:]}"
    return parse_help(result.stdout)


HELP: dict[tuple[str, str], frozenset[str] | str] = {}  # this session's answers


def known_flags(entry: tuple[str, str]) -> frozenset[str] | str:
    """The flags an entry point's --help declares, or why there are none."""
    if entry not in HELP:
        warm_help({entry})
    return HELP[entry]


def warm_help(entries) -> None:
    """Run the --help of every entry point not asked yet: together in one interpreter, then alone where that failed."""
    wanted = sorted(set(entries) - set(HELP))
    if not wanted:
        return
    keys = [f"{kind}:{target}" for kind, target in wanted]
    try:
        result = subprocess.run([sys.executable, "-c", BATCH_HELP, *keys], cwd=ROOT, env=help_environment(),
                                capture_output=True, text=True, timeout=600)
        answers = json.loads(result.stdout.rstrip().rpartition("\n")[2])
    except (subprocess.TimeoutExpired, ValueError):
        answers = {}
    for entry, key in zip(wanted, keys):
        code, stdout = answers.get(key, (None, ""))
        HELP[entry] = parse_help(stdout) if code == 0 else help_alone(entry)


def resolve(entry: tuple[str, str]) -> tuple[tuple[str, str] | None, str | None]:
    """The entry point whose flags apply (a launcher's target), and a problem when the entry point is missing."""
    kind, target = entry
    if kind == "module":
        return (entry, None) if module_file(target) else (None, f"no module {target}")
    if not (ROOT / target).is_file():
        return None, f"no file {target}"
    if kind == "shell":
        return FORWARDS.get(target), None
    return entry, None


def repository_paths(words: list[str]) -> list[str]:
    """The paths into the repository a command quotes (configs/..., tests/...), placeholders and globs left out."""
    words = [word.split("=", 1)[-1] for word in words]  # CONFIG=configs/x.yaml, --flag=path
    return [word for word in words if REPO_PATH.match(word) and not re.search(r"[A-Z]{2,}|\*", word)]


def quoted_commands(text: str):
    """(line number, what it names, entry point or None, flags quoted, repository paths quoted, problem) for each
    command of the kit; other commands (pytest, sbatch) only when they quote repository paths."""
    for number, snippet, in_block in snippets(text):
        for words in simple_commands(snippet):
            entry, arguments, named = entry_point(words)
            if entry is None:
                if (in_block or re.match(r"^(\S*/)?(python3?|bash|sbatch)\b", snippet)) and repository_paths(words):
                    yield number, " ".join(words[:3]), None, [], repository_paths(words), None
                continue
            target, problem = resolve(entry)
            yield number, named, target, flags_in(arguments), repository_paths(arguments), problem


def command_problems(text: str, source: str = "text", also: frozenset = frozenset()) -> list[str]:
    """Everything wrong with the commands a Markdown text quotes: entry points that do not exist, flags their
    --help does not know, repository paths that do not exist, and lone inline `--flag`s that no entry point quoted
    in the text (or named in `also`) has."""
    commands = list(quoted_commands(text))
    warm_help({c[2] for c in commands if c[2] is not None} | set(also))
    problems = []
    every_flag = set()
    for entry in also:
        if not isinstance(known_flags(entry), str):
            every_flag |= known_flags(entry)
    for number, named, target, flags, paths, problem in commands:
        where = f"{source}:{number}: {named}"
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        for path in paths:
            if not (ROOT / path).exists():
                problems.append(f"{where}: {path} does not exist")
        if target is None:
            continue
        known = known_flags(target)
        if isinstance(known, str):
            problems.append(f"{where}: {known}")
            continue
        every_flag |= known
        for flag in flags:
            if flag not in known:
                problems.append(f"{where}: {flag} is not a flag of {target[1]} (not in its --help)")
    for number, snippet, in_block in snippets(text):
        if not in_block and repository_paths([snippet]) and not (ROOT / snippet).exists():
            problems.append(f"{source}:{number}: `{snippet}` does not exist")
        if in_block or not snippet.startswith("--") or not every_flag:
            continue
        for flag in flags_in(snippet.split()):
            if flag not in every_flag and flag not in FOREIGN_FLAGS:
                problems.append(f"{source}:{number}: `{snippet}`: {flag} is not a flag of any command quoted here")
    return problems


# ---------------------------------------------------------------------------------------------------------------
# The tests


def test_readme_is_a_short_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move details to docs/"


@pytest.mark.parametrize("path", doc_files(), ids=relative)
def test_no_line_is_too_long(path):
    long = [f"{relative(path)}:{n}: {len(line)} characters" for n, line in enumerate(path.read_text().splitlines(), 1)
            if len(line) > MAX_LINE_LENGTH]
    assert not long, "\n".join(long)


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=relative)
def test_each_page_starts_with_the_command_a_user_types(path):
    """A title, then a shell code block with at least one command."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1].strip() in ("```bash", "```sh", "```shell"), relative(path)
    assert any(in_block for _, _, in_block in snippets("\n".join(lines[1:lines.index("```", 2) + 1]))), relative(path)


def test_the_readme_keeps_the_quickstart_commands():
    """CI (.ci/run) runs the README's test command; the demo command is the first thing a newcomer types."""
    text = README.read_text()
    assert "bash configs/demo.sh   # evaluate whisper-base on Swedish" in text
    assert "bash configs/test.sh   # run the test suite" in text


def test_every_quoted_command_and_flag_exists():
    texts = {relative(path): path.read_text() for path in doc_files()}
    entries = {c[2] for text in texts.values() for c in quoted_commands(text) if c[2] is not None}
    assert TRAINING in entries and ("script", "run_eval.py") in entries, "the docs quote no training/eval command"
    warm_help(entries)
    problems = [problem for source, text in texts.items()
                for problem in command_problems(text, source, also=frozenset(entries))]
    assert not problems, "\n".join(problems)


def test_a_renamed_flag_or_entry_point_is_reported():
    """The check above fails when a flag is renamed: made-up docs that quote flags and commands that do not exist."""
    made_up = "\n".join([
        "Evaluate with `python run_eval.py --model_name_or_path M --langauge sv` first.",
        "```bash",
        "python run_speech_recognition_seq2seq_streaming.py configs/cpu_smoke.yaml --max_steps 2 \\",
        "    --learning_rat 1e-5   # a typo on a continuation line",
        "bash scripts/run.sh configs/single_gpu_small.yaml 2 --per_device_train_batch_sise 8",
        "python benchmarks/no_such_benchmark.py --quick",
        "python -m whisper_finetuning.no_such_module --help",
        "python run_speech_recognition_seq2seq_streaming.py configs/no_such_config.yaml",
        "```",
        "and, on its own, `--retention_max_degredation 5`; the module `whisper_finetuning/no_such_file.py`.",
    ])
    problems = "\n".join(command_problems(made_up, "made-up.md"))
    for wrong in ("--langauge", "--learning_rat ", "--per_device_train_batch_sise", "no_such_benchmark.py",
                  "no_such_module", "configs/no_such_config.yaml", "--retention_max_degredation",
                  "whisper_finetuning/no_such_file.py"):
        assert wrong in problems, f"{wrong!r} was not reported:\n{problems}"
    for right in ("--model_name_or_path", "--max_steps", "configs/cpu_smoke.yaml"):
        assert right not in problems, problems


def test_commands_are_read_like_a_shell_reads_them():
    text = "\n".join([
        "```bash",
        "CONFIG=x.yaml .venv/bin/python -m whisper_finetuning.demo --quick \\",
        "    --variants plain   # comment --not_a_flag",
        "git worktree add /tmp/old <commit> && python benchmarks/data_scale.py --old_kit /tmp/old",
        "```",
        "```python",
        "python run_eval.py --ignored_in_python_blocks",
        "```",
        "inline across a line break: `python -m whisper_finetuning.export --model M",
        "--to ggml` and optional parts `python -m whisper_finetuning.app --model M [--host H --share]`",
    ])
    commands = [(named, flags) for _, named, target, flags, _, _ in quoted_commands(text) if target is not None]
    assert commands == [
        ("python -m whisper_finetuning.demo", ["--quick", "--variants"]),
        ("benchmarks/data_scale.py", ["--old_kit"]),
        ("python -m whisper_finetuning.export", ["--model", "--to"]),
        ("python -m whisper_finetuning.app", ["--model", "--host", "--share"]),
    ]


def kit_modules() -> list[str]:
    files = [*ROOT.glob("whisper_finetuning/**/*.py"), *ROOT.glob("normalizers/**/*.py"), *ROOT.glob("*.py"),
             *ROOT.glob("benchmarks/*.py")]
    return sorted(relative(path) for path in files if "__pycache__" not in path.parts)


def test_layout_names_every_module_file():
    text = LAYOUT.read_text()
    missing = [module for module in kit_modules()
               if not re.search(rf"(?<![\w/.]){re.escape(module)}(?![\w/])", text)]
    assert not missing, "docs/layout.md does not name: " + ", ".join(missing)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.M)}


@pytest.mark.parametrize("path", doc_files(), ids=relative)
def test_relative_links_point_at_files_that_exist(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    broken = []
    inline = [m.group(1) for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)]
    references = re.findall(r"^ {0,3}\[[^\]]+\]:\s*(\S+)", text, flags=re.M)
    for link in inline + references:
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading #{anchor} in {relative(file)}")
    assert not broken, f"{relative(path)}: " + "; ".join(broken)
