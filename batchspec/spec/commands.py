"""Command lines as Azure Batch runs them: split into words and executed, with no shell.

The service documents that a command line "does not run under a shell, and therefore cannot take
advantage of shell features such as environment variable expansion", and that the fix is to
"invoke the shell in the command line, for example ... "/bin/sh -c MyCommand" in Linux"
(BatchTaskCreateOptions.commandLine in the Batch API definition, BatchService.json
2025-06-01.21.0). A line that uses `$VARS`, a pipe, a redirect or `&&` without a shell works in a
terminal and fails on every node, so `shell_feature` finds such uses for a warning at plan time,
and `with_shell` is what a spec's `shell: bash` sends instead.
"""

from __future__ import annotations

import re
import shlex

SHELLS = ("bash", "sh")
# Programs that interpret the rest of the line themselves: a line starting with one needs no fix.
_INTERPRETERS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ash", "busybox", "cmd", "powershell", "pwsh"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PERCENT_VAR = re.compile(r"%[A-Za-z_][A-Za-z0-9_]*%")
_SUSPECT = re.compile(r"[$%|<>&`]")  # a line without any of these has nothing to report


def with_shell(shell: str, line: str) -> str:
    """`line` as a script run by /bin/<shell>, quoted as one word for the node's word splitting."""
    return f"/bin/{shell} -c {shlex.quote(line)}"


def runs_a_shell(line: str) -> bool:
    """Whether the line's program is a shell (or `env` running one), which expands the rest."""
    words = line.split(None, 2)
    if not words:
        return False
    program = _program(words[0])
    if program == "env" and len(words) > 1:
        program = _program(words[1])
    return program in _INTERPRETERS


def _program(word: str) -> str:
    name = word.strip("'\"").replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name.removesuffix(".exe")


def shell_feature(line: str) -> str | None:
    """The first shell feature a line uses although no shell runs it, described; else None.

    Quoting is read as the node reads it: nothing inside single quotes counts, and inside double
    quotes only what a shell would still expand there (variables, command substitution).
    """
    if not _SUSPECT.search(line) or runs_a_shell(line):
        return None
    i, n = 0, len(line)
    quote = ""
    while i < n:
        c = line[i]
        if quote == "'":
            if c == "'":
                quote = ""
        elif c == "\\":
            i += 1  # the next character is literal
        elif c == '"':
            quote = "" if quote == '"' else '"'
        elif c == "'" and not quote:
            quote = "'"
        elif c == "$":
            found = _dollar(line, i)
            if found:
                return found
        elif c == "`":
            return "a command substitution (`...`)"
        elif c == "%" and (m := _PERCENT_VAR.match(line, i)):
            return f"the variable {m.group()}"
        elif not quote and c == "|":
            return "a pipe (|)"
        elif not quote and c in "<>":
            return f"a redirect ({c})"
        elif not quote and line.startswith("&&", i):
            return "&&"
        i += 1
    return None


def _dollar(line: str, i: int) -> str | None:
    if line.startswith("{", i + 1):
        end = line.find("}", i + 2)
        if end > 0 and _NAME.fullmatch(line[i + 2 : end]):
            return f"the variable {line[i : end + 1]}"
        return None
    if line.startswith("(", i + 1):
        return "a command substitution ($(...))"
    m = _NAME.match(line, i + 1)
    return f"the variable ${m.group()}" if m else None
