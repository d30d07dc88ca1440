"""The command line as a user meets it: what `lmgan --help` says, `lmgan sweep` as the sweep,
defaults in every help, a did-you-mean for a typo, and one runs folder from any directory."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmgan.cli import build_parser, main
from lmgan.runs import find_run_path, runs_root

REPO = Path(__file__).resolve().parents[1]


def helps(parser) -> dict:
    return {name: " ".join(p.format_help().split()) for name, p in parser._subparsers._group_actions[0].choices.items()}


def test_help_says_what_the_tool_does_and_lists_the_sweep_first():
    top = build_parser()
    text = " ".join(top.format_help().split())
    assert "sound-to-video GAN" in text and "lmgan sweep" in text and "arguments →" not in text
    assert list(top._subparsers._group_actions[0].choices)[0] == "sweep"


def test_lmgan_sweep_is_the_sweep_of_sweeps_search_py():
    from lmgan.sweep.arguments import build_parser as search_parser
    ours = {s for a in build_parser()._subparsers._group_actions[0].choices["sweep"]._actions for s in a.option_strings}
    theirs = {s for a in search_parser()._actions for s in a.option_strings}
    assert ours == theirs and "--video" in ours and "--resume" in ours


def test_every_option_with_a_default_shows_it():
    for name, text in helps(build_parser()).items():
        parser = build_parser()._subparsers._group_actions[0].choices[name]
        for action in parser._actions:
            if action.option_strings and action.default not in (None, False, [], "==SUPPRESS==") \
                    and not isinstance(action.default, bool):
                assert action.help and "default" in parser._get_formatter()._get_help_string(action), \
                    (name, action.option_strings)
    assert "(default: auto)" in helps(build_parser())["render"]
    assert "(default: 0)" in helps(build_parser())["sweep"]       # --seed


@pytest.mark.parametrize("argv, hint", [
    (["swep"], "did you mean sweep?"),
    (["train", "--vidoe", "x"], "did you mean --video?"),
    (["sweep", "--trails", "3"], "did you mean --trials?"),
    (["eval", "--checkpoint", "x", "--metircs", "ssim"], "did you mean --metrics?"),
    # another command's option is not suggested back as itself
    (["demo-video", "--out", "x.mp4"], "--out is not an option of this command (see its --help)"),
])
def test_a_typo_gets_the_closest_name(capsys, argv, hint):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(hint), err


def test_the_runs_folder_is_the_same_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("LMGAN_RUNS", raising=False)
    monkeypatch.chdir(REPO / "docs")
    assert runs_root() == REPO / "runs"                 # inside the checkout: its runs/
    monkeypatch.chdir(tmp_path)
    assert runs_root() == Path("runs")                  # elsewhere: ./runs
    monkeypatch.setenv("LMGAN_RUNS", str(tmp_path / "lab"))
    assert runs_root() == tmp_path / "lab" and runs_root("mine") == Path("mine")
    (tmp_path / "lab" / "demo-1").mkdir(parents=True)
    assert find_run_path("demo-1") == tmp_path / "lab" / "demo-1"      # a run's name works anywhere
    assert find_run_path("elsewhere") == Path("elsewhere")             # else as given (its error names it)


def test_sweep_subcommand_reports_bad_input_in_one_line(tmp_path):
    env = {**os.environ, "LMGAN_RUNS": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "lmgan", "sweep", "--resume", "--name", "never-ran"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"lmgan: error: --resume: no sweep named 'never-ran' in {tmp_path / 'sweeps'} (known: none)"], r.stderr
