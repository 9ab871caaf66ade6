"""A small datadriven test runner (after cockroachdb/datadriven, as used by etcd-io/raft).

File format
-----------
A test file is a sequence of blocks, each a command, optional input lines, a
separator and the expected output::

    # a comment
    command arg1 key=val key=(v1,v2)
    optional input line
    ----
    expected output
    (ends at the first blank line)

If the expected output itself contains blank lines, the block uses a double
separator and ends with one::

    command
    ----
    ----
    output with

    a blank line
    ----
    ----

Comment lines (`#`) and blank lines between blocks are kept as they are.
Header comments at the very top of a file may carry directives for the test
(see `header_directives`), e.g. `# xfail: <reason>`.

Rewrite mode regenerates the expected outputs in place (keeping everything
else verbatim): set `CHAINFIRE_REWRITE=1`, or run this module as a script
with `--rewrite FILE...`.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SEPARATOR = "----"
REWRITE_ENV = "CHAINFIRE_REWRITE"
# A file is read in full; this bounds how many blocks one file may hold.
MAX_BLOCKS_PER_FILE = 10_000


class DataDrivenError(Exception):
    """The file is malformed, or a command was used wrongly (the test's fault)."""


@dataclass(frozen=True, slots=True)
class CmdArg:
    """`key`, `key=val` or `key=(v1,v2)`: a key and its values (maybe none)."""

    key: str
    vals: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.vals:
            return self.key
        if len(self.vals) == 1:
            return f"{self.key}={self.vals[0]}"
        return f"{self.key}=({','.join(self.vals)})"


@dataclass(slots=True)
class TestData:
    """One block of a file."""

    __test__ = False  # not a pytest class

    pos: str
    cmd: str
    args: list[CmdArg]
    input: str
    expected: str
    # Line span of the expected output (0-based, end exclusive) and whether
    # the block used the double separator.
    expected_span: tuple[int, int] = (0, 0)
    double_separator: bool = False

    def has_arg(self, key: str) -> bool:
        return any(arg.key == key for arg in self.args)

    def arg(self, key: str) -> CmdArg | None:
        for arg in self.args:
            if arg.key == key:
                return arg
        return None

    def positional(self) -> list[str]:
        """The arguments without values, in order (e.g. node ids)."""
        return [arg.key for arg in self.args if not arg.vals]

    def fatal(self, message: str) -> DataDrivenError:
        return DataDrivenError(f"{self.pos}: {self.cmd}: {message}")


@dataclass(slots=True)
class ParsedFile:
    path: Path
    lines: list[str]
    blocks: list[TestData] = field(default_factory=list)


def parse_args(text: str, pos: str) -> tuple[str, list[CmdArg]]:
    """Split a command line into the command and its arguments."""
    fields = _split_fields(text, pos)
    if not fields:
        raise DataDrivenError(f"{pos}: empty command")
    args = []
    for word in fields[1:]:
        key, sep, value = word.partition("=")
        if not key:
            raise DataDrivenError(f"{pos}: argument without a key: {word!r}")
        if not sep:
            args.append(CmdArg(key))
        elif value.startswith("(") and value.endswith(")"):
            inner = value[1:-1]
            args.append(CmdArg(key, tuple(v.strip() for v in inner.split(",") if v.strip())))
        else:
            args.append(CmdArg(key, (value,)))
    return fields[0], args


def _split_fields(text: str, pos: str) -> list[str]:
    """Whitespace-separated words; a `(...)` group stays one word."""
    fields: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise DataDrivenError(f"{pos}: unbalanced ')' in {text!r}")
        if char.isspace() and depth == 0:
            if current:
                fields.append(current)
            current = ""
        else:
            current += char
    if depth != 0:
        raise DataDrivenError(f"{pos}: unbalanced '(' in {text!r}")
    if current:
        fields.append(current)
    return fields


def parse_file(path: Path) -> ParsedFile:
    text = path.read_text()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    parsed = ParsedFile(path=path, lines=lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or line.lstrip().startswith("#"):
            i += 1
            continue
        if len(parsed.blocks) >= MAX_BLOCKS_PER_FILE:
            raise DataDrivenError(f"{path}: more than {MAX_BLOCKS_PER_FILE} blocks")
        block, i = _parse_block(path, lines, i)
        parsed.blocks.append(block)
    return parsed


def _parse_block(path: Path, lines: list[str], start: int) -> tuple[TestData, int]:
    pos = f"{path.name}:{start + 1}"
    cmd, args = parse_args(lines[start], pos)
    i = start + 1
    inputs = []
    while i < len(lines) and lines[i] != SEPARATOR:
        if not lines[i].strip():
            raise DataDrivenError(f"{pos}: blank line before '{SEPARATOR}'")
        inputs.append(lines[i])
        i += 1
    if i == len(lines):
        raise DataDrivenError(f"{pos}: missing '{SEPARATOR}'")
    i += 1  # the separator
    double = i < len(lines) and lines[i] == SEPARATOR
    if double:
        i += 1
        out_start = i
        while i + 1 < len(lines) and not (lines[i] == SEPARATOR and lines[i + 1] == SEPARATOR):
            i += 1
        if i + 1 >= len(lines):
            raise DataDrivenError(f"{pos}: missing closing '{SEPARATOR}' '{SEPARATOR}'")
        out_end = i
        i += 2
    else:
        out_start = i
        while i < len(lines) and lines[i].strip():
            i += 1
        out_end = i
    expected = "\n".join(lines[out_start:out_end])
    block = TestData(pos=pos, cmd=cmd, args=args, input="\n".join(inputs), expected=expected,
                     expected_span=(out_start, out_end), double_separator=double)
    return block, i


def header_directives(path: Path) -> dict[str, str]:
    """`# key: value` comment lines at the top of the file (before the first
    non-comment line), e.g. `# xfail: reason`. Keys are lower-cased."""
    directives: dict[str, str] = {}
    for line in path.read_text().split("\n"):
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].partition(":")
        key = key.strip().lower()
        if sep and key and " " not in key:
            directives[key] = value.strip()
    return directives


def rewrite_requested() -> bool:
    return os.environ.get(REWRITE_ENV, "") not in ("", "0")


Handler = Callable[[TestData], str]


def run_file(path: Path, handler: Handler, *, rewrite: bool = False) -> list[str]:
    """Run every block of `path` through `handler`; return the mismatches as
    printable diffs (empty when all match). With `rewrite`, write the actual
    outputs back into the file instead (and return nothing)."""
    parsed = parse_file(path)
    failures = []
    actuals = []
    for block in parsed.blocks:
        actual = handler(block).rstrip("\n")
        actuals.append(actual)
        if actual != block.expected:
            diff = "\n".join(difflib.unified_diff(
                block.expected.split("\n"), actual.split("\n"),
                "expected", "actual", lineterm=""))
            failures.append(f"{block.pos}: {block.cmd} {' '.join(map(str, block.args))}\n{diff}")
    if rewrite:
        path.write_text(_rewritten(parsed, actuals))
        return []
    return failures


def _rewritten(parsed: ParsedFile, actuals: list[str]) -> str:
    out: list[str] = []
    cursor = 0
    lines = parsed.lines
    for block, actual in zip(parsed.blocks, actuals, strict=True):
        start, end = block.expected_span
        sep_line = start - 2 if block.double_separator else start - 1
        out.extend(lines[cursor:sep_line])
        out.append(SEPARATOR)
        needs_double = any(not line.strip() for line in actual.split("\n")) and actual != ""
        if needs_double:
            out.append(SEPARATOR)
        out.extend(actual.split("\n") if actual else [])
        if needs_double:
            out.extend([SEPARATOR, SEPARATOR])
        cursor = end + 2 if block.double_separator else end
    out.extend(lines[cursor:])
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    """`python datadriven.py [--rewrite] FILE...`: run (or rewrite) files
    with the interaction environment."""
    from interaction_env import InteractionEnv

    rewrite = "--rewrite" in argv
    status = 0
    for name in (arg for arg in argv if arg != "--rewrite"):
        failures = run_file(Path(name), InteractionEnv().handle, rewrite=rewrite)
        for failure in failures:
            print(failure)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
