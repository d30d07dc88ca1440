"""argparse as lmgan's commands use it: a usage error is one line (exit 2) that suggests the
closest option or command, and every option's help ends with its default."""

from __future__ import annotations

import argparse
import difflib
import re

from lmgan.errors import LmganError


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" to an option's help, unless it has no default or says it already."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default" in text or default is None or default is False
                or default is argparse.SUPPRESS or default == []):
            return text
        return f"{text} (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """Usage errors raise LmganError: one line, not usage + message, with a did-you-mean."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise LmganError(f"{self.prog}: {message}{self._suggestion(message)}")

    def _suggestion(self, message: str) -> str:
        unknown = re.search(r"unrecognized arguments: (-\S+)", message)
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if unknown:
            word, known = unknown.group(1).split("=")[0], self._options()
        elif choice:
            word, known = choice.group(1), re.findall(r"'([^']*)'", choice.group(2))
        else:
            return ""
        if unknown and word in known:      # an option of another command (train's --out): no
            return f"; {word} is not an option of this command (see its --help)"   # self-suggestion
        close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
        return f"; did you mean {close[0]}?" if close else ""

    def _options(self) -> list[str]:
        """Every option string of this parser and of its subcommands."""
        found = [s for a in self._actions for s in a.option_strings]
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found += sub._options() if isinstance(sub, OneLineParser) else []
        return found
