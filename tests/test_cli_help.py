"""Help that teaches (issue 13 item 8): every option of every command has help text, and
`dse sweep --help` names the spec sections."""
import argparse

import pytest

from dse.cli import build_parser, main


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_has_help():
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, sub in _subparsers().items() for a in sub._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert not missing, missing


def test_sweep_help_lists_the_spec_sections(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    out = capsys.readouterr().out
    for section in ("[grid]", "[what_if]", "[constraints]", "[disaggregated]", "dse init"):
        assert section in out
