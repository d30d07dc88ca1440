"""The commands that README.md, docs/*.md and dashboards/README.md show, checked against the
parsers that run them: every option a command gives is one its parser has, and every default a
page states for an option is the one its --help shows. A renamed option, a changed default, or a
page that still shows the old one fails here with the page, the line and the option.

What counts as a command, in fenced code blocks and in inline code: `lmgan SUBCOMMAND ...`,
`python sweeps/search.py ...`, `python -m lmgan[.module] ...`, `python path/to/script.py ...` (a
script of the repository), and `sbatch ... cluster/slurm.sbatch ARGS` (ARGS are lmgan sweep's).
Line continuations (`\\`) are joined and comments dropped; placeholders (NAME, <sweep>, ...) are
values, so never checked; `[--optional]` brackets are ignored. An inline span of options alone
(`--trials N`) belongs to the command before it on the page that has them (else to any lmgan
command that has them). A page states a default as "`--flag` (default X)", "`--flag` (500)",
"`--flag` defaults to X", or in a table with an "option" and a "default" column (one option a
row). A stated default agrees with the help when every number and `code` in it appears in the
help from its word "default" on (or, with neither, one of its words does); a switch is "off".

Parsers are built in-process (lmgan.cli.build_parser with its subcommands,
lmgan.sweep.arguments.build_parser, a module's build_parser()); a module or script without one
has its `--help` read, once each.

Also here: every option of lmgan's own commands shows its default in its help (the sweep's
budget with the demo's values), and a count of the mutation checks a page gives is the list's.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "dashboards" / "README.md"]

# Options of other programs that the pages name in prose, not lmgan's. A flag in prose that no
# lmgan command has and that is not listed here fails: add it here only if it is another tool's.
OTHER_PROGRAMS = {
    "sbatch": {"--time", "--signal", "--requeue", "--partition", "--account", "--job-name", "--nodes",
               "--gpus-per-node", "--cpus-per-task", "--ntasks-per-node", "--exclusive"},
    "ray start": {"--head", "--num-gpus", "--object-manager-port", "--include-dashboard",
                  "--metrics-export-port"},
}
OTHER_FLAGS = set().union(*OTHER_PROGRAMS.values())

NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\d.]\d)")
STOP_WORDS = {"the", "and", "else", "with", "its", "for", "any", "all", "one", "not", "but", "from", "this"}


# ---------------------------------------------------------------------------------------------
# What the parsers say

@dataclass
class Option:
    strings: tuple[str, ...]
    help: str                 # as --help shows it, "%(default)s" expanded, on one line
    switch: bool              # takes no value
    required: bool = False

    def default_text(self) -> str | None:
        """The help from its word "default" on, or None where it states none."""
        i = self.help.lower().find("default")
        return self.help[i:] if i >= 0 else None


@dataclass
class Parser:
    name: str                 # as a user types it: "lmgan sweep", "python -m lmgan.bench"
    options: dict[str, Option] = field(default_factory=dict)
    subcommands: dict[str, "Parser"] = field(default_factory=dict)

    def every_option(self):
        seen = set()
        for opt in self.options.values():
            if id(opt) not in seen:
                seen.add(id(opt))
                yield self, opt
        for sub in self.subcommands.values():
            yield from sub.every_option()


def from_argparse(p: argparse.ArgumentParser, name: str) -> Parser:
    fmt = p._get_formatter()
    out = Parser(name)
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, sp in action.choices.items():
                out.subcommands[sub] = from_argparse(sp, f"{name} {sub}")
        elif action.option_strings:
            text = "" if action.help in (None, argparse.SUPPRESS) else fmt._expand_help(action)
            opt = Option(tuple(action.option_strings), " ".join(text.split()), action.nargs == 0,
                         action.required)
            out.options.update(dict.fromkeys(action.option_strings, opt))
    return out


_ENTRY = re.compile(r"^ {1,4}(-\S.*?)(?: {2,}(\S.*))?$")


def from_help_text(text: str, name: str) -> Parser:
    """An argparse --help output read back: its options, each with its help text."""
    out, current = Parser(name), None
    for line in text.splitlines():
        entry = _ENTRY.match(line)
        if entry:
            forms = entry.group(1).split(", ")
            strings = tuple(f.split()[0].split("=")[0] for f in forms)
            current = Option(strings, entry.group(2) or "", all(len(f.split()) == 1 for f in forms))
            out.options.update(dict.fromkeys(strings, current))
        elif current is not None and line.startswith("      ") and line.strip():
            current.help = f"{current.help} {line.strip()}".strip()
        else:
            current = None
    return out


def _help_output(args: list[str], name: str) -> Parser | str:
    env = {**os.environ, "COLUMNS": "200"}
    p = subprocess.run([sys.executable, *args, "--help"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    if p.returncode != 0:
        last = (p.stderr or p.stdout).strip().splitlines()[-1:]
        return f"`{name} --help` exits {p.returncode}: {last[0] if last else ''}"
    return from_help_text(p.stdout, name)


@functools.cache
def cli() -> Parser:
    from lmgan.cli import build_parser
    return from_argparse(build_parser(), "lmgan")


@functools.cache
def sweep_script() -> Parser:
    from lmgan.sweep.arguments import build_parser
    return from_argparse(build_parser(), "python sweeps/search.py")


@functools.cache
def module_parser(module: str) -> Parser | str:
    """`python -m MODULE`'s parser, or why there is none."""
    if module == "lmgan":
        return cli()
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        spec = None
    if spec is None:
        return f"python -m {module}: there is no module {module}"
    if spec.submodule_search_locations is None:       # a module, not a package's __main__
        built = getattr(importlib.import_module(module), "build_parser", None)
        if callable(built):
            return from_argparse(built(), f"python -m {module}")
    return _help_output(["-m", module], f"python -m {module}")


@functools.cache
def script_parser(path: str) -> Parser | str:
    if path == "sweeps/search.py":
        return sweep_script()
    if not (ROOT / path).is_file():
        return f"python {path}: there is no file {path} in the repository"
    return _help_output([path], f"python {path}")


def slurm_sweep() -> Parser:
    sweep = cli().subcommands["sweep"]
    return Parser("sbatch cluster/slurm.sbatch (lmgan sweep's options)", sweep.options)


# ---------------------------------------------------------------------------------------------
# What the pages show

_SEPARATORS = set(";&|()<>")


def _segments(text: str):
    """Token lists of one shell line, split at ;, &&, |, ( and ); a quoted argument that holds a
    command line (ray exec ... 'cd ~/lmgan && lmgan sweep ...') is read as one too."""
    try:
        lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
        lex.whitespace_split, lex.commenters = True, ""
        tokens = list(lex)
        quoted = True
    except ValueError:                    # an apostrophe in output or prose: split on blanks
        tokens = re.findall(r"[^\s;&|()<>]+|[;&|()<>]+", text.replace("\\|", "¦"))
        tokens = [t.replace("¦", "|") for t in tokens]
        quoted = False
    current: list[str] = []
    for tok in tokens:
        if tok and set(tok) <= _SEPARATORS:
            yield current
            current = []
        else:
            if quoted and re.search(r"\s", tok):
                yield from _segments(tok)
            current.append(tok)
    yield current


def commands_in(text: str):
    """(parser or why there is none, its arguments) for each lmgan command in a line."""
    for tokens in _segments(text):
        for i, tok in enumerate(tokens):
            rest = tokens[i + 1:]
            if tok == "lmgan":
                parser, args = cli(), rest
                word = rest[0].strip("[]") if rest else ""
                if word and not word.startswith("-"):
                    if word in parser.subcommands:
                        parser, args = parser.subcommands[word], rest[1:]
                    elif re.fullmatch(r"[a-z][a-z0-9-]*", word) and all(
                            re.fullmatch(r"\w+=\S*", t) for t in tokens[:i]):   # the line's command
                        parser = f"lmgan {word}: there is no such command (lmgan has {', '.join(parser.subcommands)})"
                    else:
                        break    # "the trial's lmgan checkpoints", "lmgan Ray cluster": prose, no command
                yield parser, args
                break
            if tok in ("python", "python3") and rest:
                if rest[0] == "-m" and len(rest) > 1 and re.fullmatch(r"lmgan(\.\w+)*", rest[1]):
                    yield module_parser(rest[1]), rest[2:]
                    break
                if rest[0].endswith(".py"):
                    yield script_parser(rest[0]), rest[1:]
                    break
            if tok == "sbatch":
                script = next((j for j, s in enumerate(rest) if s.endswith(".sbatch")), None)
                if script is not None:
                    yield slurm_sweep(), rest[script + 1:]
                    break


def flags(args) -> list[str]:
    """The --options among a command's arguments (values and placeholders are not checked)."""
    found = []
    for arg in args:
        arg = arg.strip("[]")
        if arg.startswith("--") and len(arg) > 2:
            found.append(arg.split("=")[0].rstrip(",.:"))
    return found


@dataclass
class Page:
    path: Path
    code: list[tuple[int, str]]           # (line, logical line) of fenced blocks
    prose: str                            # the page with its fenced blocks blanked, lines kept

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT)) if self.path.is_relative_to(ROOT) else self.path.name

    def line_at(self, offset: int) -> int:
        return self.prose.count("\n", 0, offset) + 1


def read_page(path: Path) -> Page:
    code, prose, fence, pending, start = [], [], None, "", 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        opening = re.match(r" {0,3}(`{3,}|~{3,})", line)
        if fence is None and opening:
            fence = opening.group(1)
            prose.append("")
            continue
        if fence is not None:
            prose.append("")
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = None
                continue
            stripped = re.sub(r"(^|\s)#.*$", "", line).rstrip()       # a shell comment
            if not pending:
                start = n
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            code.append((start, pending + stripped))
            pending = ""
        else:
            prose.append(line)
    return Page(path, code, "\n".join(prose))


_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)
_STATED = [re.compile(r"\s*\(default:?\s+([^()]*)\)"), re.compile(r"\s*\((\d[\d.]*)\)"),
           re.compile(r"\s+defaults? to\s+([^.;()]*)")]


def spans(page: Page):
    """(line, text, end offset) of each inline code span."""
    for m in _SPAN.finditer(page.prose):
        yield page.line_at(m.start()), " ".join(m.group(2).split()), m.end()


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]


def option_tables(page: Page):
    """(line, option cell, default cell) of each row of a table with an option and a default column."""
    lines = page.prose.split("\n")
    n = 0
    while n < len(lines):
        if not lines[n].lstrip().startswith("|"):
            n += 1
            continue
        head = [c.lower() for c in _cells(lines[n])]
        body_start, n = n + 2, n + 1
        while n < len(lines) and lines[n].lstrip().startswith("|"):
            n += 1
        if "option" in head and "default" in head:
            o, d = head.index("option"), head.index("default")
            for k in range(body_start, n):
                cells = _cells(lines[k])
                yield k + 1, cells[o], cells[d] if d < len(cells) else ""


# ---------------------------------------------------------------------------------------------
# The checks

def default_problem(opt: Option, stated: str) -> str | None:
    """Why a default the page states is not the one the help shows (None: it is)."""
    stated = stated.replace("\\|", "|").strip()
    shown = opt.default_text()
    if opt.switch and shown is None:
        return None if stated.lower() == "off" else f"a switch is off unless given, the page says {stated!r}"
    if shown is None:
        return f"the page says its default is {stated!r}; its help states no default: {opt.help!r}"
    codes = re.findall(r"`([^`]+)`", stated)
    plain = re.sub(r"`[^`]+`", " ", stated)
    numbers = NUMBER.findall(plain) + [c for c in codes if NUMBER.fullmatch(c)]
    codes = [c for c in codes if not NUMBER.fullmatch(c)]
    if codes or numbers:
        shown_numbers = set(NUMBER.findall(shown))
        missing = [c for c in codes if c not in shown] + [x for x in numbers if x not in shown_numbers]
    else:
        words = [w for w in re.findall(r"[\w$<>/.'-]+", plain.lower()) if len(w) > 2 and w not in STOP_WORDS]
        missing = [] if not words or any(w in shown.lower() for w in words) else words
    if missing:
        return (f"the page says its default is {stated!r}, its help says {shown!r} "
                f"({', '.join(map(repr, missing))} not in it)")
    return None


def check_page(path: Path) -> list[str]:
    page = read_page(path)
    problems: list[str] = []
    context: list[tuple[int, Parser]] = []          # (line, parser) of each command, in page order

    def command(line: int, text: str) -> None:
        for parser, args in commands_in(text):
            if isinstance(parser, str):
                problems.append(f"{page.name}:{line}: {parser}")
                continue
            context.append((line, parser))
            for flag in flags(args):
                if flag not in parser.options:
                    problems.append(f"{page.name}:{line}: {flag} is not an option of {parser.name} "
                                    f"(shown as: {' '.join(text.split())[:120]})")

    found = [(line, text) for line, text in page.code]
    inline = []
    for line, text, end in spans(page):
        if text.startswith("--"):
            inline.append((line, text, end))
        else:
            found.append((line, text))
    for line, text in sorted(found, key=lambda lt: lt[0]):
        command(line, text)
    context.sort(key=lambda lp: lp[0])
    lines = [line for line, _ in context]
    everyone = [*cli().subcommands.values(), sweep_script(), *(p for _, p in context)]

    def owners(line: int, names: list[str]) -> list[Parser]:
        """The command these options belong to: the one before them on the page that has them
        all, else any lmgan command that has them all."""
        before = [p for _, p in context[:bisect.bisect_right(lines, line)]]
        for parser in reversed(before):
            if all(n in parser.options for n in names):
                return [parser]
        return [p for p in everyone if all(n in p.options for n in names)]

    def stated_default(line: int, name: str, stated: str) -> None:
        candidates = owners(line, [name])
        if not candidates:
            return                     # another program's option; its existence is checked apart
        why = [default_problem(p.options[name], stated) for p in candidates]
        if all(why):
            problems.append(f"{page.name}:{line}: {name} of {candidates[0].name}: {why[0]}")

    for line, text, end in inline:
        names = flags(text.replace("\\|", "|").split())
        unknown = [n for n in names if n not in OTHER_FLAGS and not owners(line, [n])]
        for name in unknown:
            problems.append(f"{page.name}:{line}: {name} is an option of no lmgan command "
                            f"(nor of {', '.join(OTHER_PROGRAMS)})")
        if names and not unknown and not owners(line, [n for n in names if n not in OTHER_FLAGS]):
            problems.append(f"{page.name}:{line}: no lmgan command has all of `{text}`")
        if len(names) == 1:
            for pattern in _STATED:
                m = pattern.match(page.prose, end)
                if m:
                    stated_default(line, names[0], m.group(1))
                    break

    for line, option_cell, default_cell in option_tables(page):
        names = [n for s in re.findall(r"`([^`]+)`", option_cell) for n in flags(s.split())]
        if len(names) != 1:
            problems.append(f"{page.name}:{line}: an option table's row names {len(names)} options "
                            f"({option_cell}); give each its own row, so its default is its own")
            continue
        if not owners(line, names):
            problems.append(f"{page.name}:{line}: {names[0]} is an option of no lmgan command")
            continue
        stated_default(line, names[0], default_cell)
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_on_the_page_match_their_parsers(page):
    problems = check_page(page)
    assert not problems, "\n".join(["the page and the commands' parsers disagree:", *problems])


def test_every_option_of_lmgans_commands_shows_its_default():
    """A switch is off unless given, a required option has none; every other option says its
    default, including the ones a named video sets (the demo's sweep budget)."""
    silent = [f"{parser.name} {opt.strings[-1]}: {opt.help!r}"
              for top in (cli(), sweep_script()) for parser, opt in top.every_option()
              if not (opt.switch or opt.required) and "default" not in opt.help.lower()]
    assert not silent, "options whose help shows no default:\n" + "\n".join(silent)


def test_the_sweep_help_gives_the_demos_budget():
    from lmgan.data.videos import sweep_default
    helps = {k: sweep_script().options[k].help for k in ("--max-iters", "--eval-every", "--grace-iters")}
    for key, flag in (("max_iters", "--max-iters"), ("eval_every", "--eval-every"), ("grace_iters", "--grace-iters")):
        value = sweep_default(key, None)
        if value is not None:
            assert f"the demo's: {value}" in helps[flag], (flag, helps[flag])


def test_a_count_of_the_mutations_a_page_gives_is_the_lists():
    """docs/contributing.md gives none (the list grows with every test written for a bug); a page
    that does, beside `tests/mutants.py` ("--fast  # the N whose ...", "# all N") or in prose
    ("N mutations", "N fast mutations"), gives tests/mutants.py's."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import mutants
    finally:
        sys.path.remove(str(ROOT / "tests"))
    total, fast = len(mutants.MUTATIONS), sum(not mu.slow for mu in mutants.MUTATIONS)
    wrong = []
    for page in PAGES:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            counts = [(int(k), fast) for k in re.findall(r"\b(\d+) fast mutations\b", line)]
            counts += [(int(k), total) for k in re.findall(r"\b(\d+) mutations\b", line)]
            if "tests/mutants.py" in line:
                counts += [(int(k), fast if "--fast" in line else total)
                           for k in re.findall(r"#.*?\b(?:the|all) (\d+)\b", line)]
            wrong += [f"{page.relative_to(ROOT)}:{n}: says {said} mutations; tests/mutants.py has {has} "
                      f"({fast} of them fast)" for said, has in counts if said != has]
    assert not wrong, "\n".join(wrong)


def test_a_wrong_option_or_default_is_named_with_page_and_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Run it:\n\n"
        "```bash\n"
        "lmgan sweep --video NAME \\\n"
        "    --trails 3 [--dry-run]   # a typo after a continuation\n"
        "ray exec cluster.yaml 'cd ~/lmgan && python sweeps/search.py --vidoe demo'\n"
        "lmgan swep --video demo\n"
        "```\n\n"
        "Then `lmgan report --experiment VIDEO [--sweep NAME]`; `--max-failures` (default 5)\n"
        "restarts a trial, and `--seed` defaults to 7.\n\n"
        "| option | default |\n| --- | --- |\n| `--trials N` | 21 |\n| `--verbose [1\\|2]` | 0 |\n"
        "| `--no-baseline` | off |\n")
    problems = check_page(page)
    assert any(p.startswith("page.md:4: --trails is not an option of lmgan sweep") for p in problems), problems
    assert any(p.startswith("page.md:6: --vidoe is not an option of python sweeps/search.py") for p in problems)
    assert any(p.startswith("page.md:7: lmgan swep: there is no such command") for p in problems)
    assert any(p.startswith("page.md:10: --max-failures of python sweeps/search.py") and "'5'" in p for p in problems)
    assert any(p.startswith("page.md:11: --seed of") and "'7'" in p for p in problems)
    assert any(p.startswith("page.md:15: --trials of") and "'21'" in p for p in problems)
    assert len(problems) == 6, problems
