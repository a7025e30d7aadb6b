"""Turn a Batch task command line into an argv, the way a Linux compute node does.

The service does not run a command line under a shell, and therefore does no environment
variable expansion in it: "The command line does not run under a shell, and therefore cannot take
advantage of shell features such as environment variable expansion. If you want to take advantage
of such features, you should invoke the shell in the command line, for example ... "/bin/sh -c
MyCommand" in Linux" (BatchTaskCreateOptions.commandLine, Azure/azure-rest-api-specs
specification/batch, BatchService.json 2025-06-01.21.0). The line is split into words with POSIX
quoting rules (single quotes, double quotes, backslash escapes) and nothing else: `$VAR`, `$(...)`,
backticks, globs, pipes, redirects and `;` are plain text in the argument they belong to.

Output file patterns are different: their documentation says environment variables are expanded
before the pattern is applied; `expand_vars` does that.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\n\r"


class CommandLineError(ValueError):
    """The command line cannot be split (an unterminated quote, an empty line)."""


def split_command_line(line: str) -> list[str]:
    """Split `line` into argv with POSIX quoting rules; `$` is an ordinary character."""
    words: list[str] = []
    word: list[str] = []
    in_word = False  # distinguishes "no word yet" from an empty quoted word ('' or "")
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c in _SPACE:
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            i += 1
        elif c == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise CommandLineError("unterminated single quote in the command line")
            word.append(line[i + 1 : end])
            in_word, i = True, end + 1
        elif c == '"':
            i = _double_quoted(line, i + 1, word)
            in_word = True
        elif c == "\\":
            # Outside quotes a backslash makes the next character literal; a trailing one is kept.
            if i + 1 < n:
                if line[i + 1] != "\n":  # backslash-newline is a line continuation
                    word.append(line[i + 1])
                i += 2
            else:
                word.append("\\")
                i += 1
            in_word = True
        else:
            word.append(c)
            in_word, i = True, i + 1
    if in_word:
        words.append("".join(word))
    if not words or not words[0]:
        raise CommandLineError("the command line is empty")
    return words


def _double_quoted(line: str, i: int, word: list[str]) -> int:
    """Consume a double-quoted span starting after the opening quote; return the index after it."""
    n = len(line)
    while i < n:
        c = line[i]
        if c == '"':
            return i + 1
        if c == "\\" and i + 1 < n and line[i + 1] in '$`"\\\n':
            if line[i + 1] != "\n":
                word.append(line[i + 1])
            i += 2
        else:
            word.append(c)
            i += 1
    raise CommandLineError("unterminated double quote in the command line")


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Expand `$VAR`/`${VAR}` in `text` from `env` (no quoting rules); used for file patterns.

    An undefined variable expands to the empty string; a `$` not followed by a name stays.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
            continue
        if text.startswith("{", i + 1):
            end = text.find("}", i + 2)
            name = text[i + 2 : end] if end >= 0 else ""
            if end >= 0 and _NAME.fullmatch(name):
                out.append(env.get(name, ""))
                i = end + 1
                continue
        else:
            match = _NAME.match(text, i + 1)
            if match is not None:
                out.append(env.get(match.group(), ""))
                i = match.end()
                continue
        out.append("$")
        i += 1
    return "".join(out)
