"""A planted mutant of an op's sanitizer plan (tests/emulation/<op>_plan.py): one textual change
to a copy of csrc/ that tests/emulation/sanitize.py builds and runs, and that must be reported."""

from typing import NamedTuple


class Mutant(NamedTuple):
    name: str
    file: str           # under csrc/
    old: str            # must occur exactly once
    new: str
    flavor: str         # the sanitizer build it runs in
    args: list
    env: dict
    expect: list        # regexes the failing run's output must all match
    why: str
