"""Turn a Batch task command line into an argv, the way a Linux compute node does.

Batch does not run a task's command line under a shell: the line is split into words and the
program is executed directly. This module splits with POSIX quoting rules (single quotes,
double quotes, backslash escapes) and expands ``$VAR`` / ``${VAR}`` from the *task's*
environment outside single quotes. Nothing else a shell does happens: no command substitution
(``$(...)``, backticks), no globbing, no pipes, redirects or ``;`` — such characters are plain
text in the argument they belong to. An expanded value is never re-split into several words
(unlike an unquoted expansion in sh), so a value with spaces or metacharacters stays one
argument. An undefined variable expands to the empty string, as in sh.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\n\r"


class CommandLineError(ValueError):
    """The command line cannot be split (an unterminated quote, an empty line)."""


def split_command_line(line: str, env: dict[str, str]) -> list[str]:
    """Split `line` into argv, expanding `$VAR`/`${VAR}` from `env` outside single quotes."""
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
            i = _double_quoted(line, i + 1, env, word)
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
        elif c == "$":
            i = _expand(line, i, env, word)
            in_word = True
        else:
            word.append(c)
            in_word, i = True, i + 1
    if in_word:
        words.append("".join(word))
    if not words or not words[0]:
        raise CommandLineError("the command line is empty")
    return words


def _double_quoted(line: str, i: int, env: dict[str, str], word: list[str]) -> int:
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
        elif c == "$":
            i = _expand(line, i, env, word)
        else:
            word.append(c)
            i += 1
    raise CommandLineError("unterminated double quote in the command line")


def _expand(line: str, i: int, env: dict[str, str], word: list[str]) -> int:
    """Expand the `$` at line[i]; a `$` not followed by a name or `{name}` stays literal."""
    if line.startswith("{", i + 1):
        end = line.find("}", i + 2)
        name = line[i + 2 : end] if end >= 0 else ""
        if end >= 0 and _NAME.fullmatch(name):
            word.append(env.get(name, ""))
            return end + 1
        word.append("$")
        return i + 1
    match = _NAME.match(line, i + 1)
    if match is None:
        word.append("$")
        return i + 1
    word.append(env.get(match.group(), ""))
    return match.end()


def expand_vars(text: str, env: dict[str, str]) -> str:
    """Expand `$VAR`/`${VAR}` in `text` from `env` (no quoting rules); used for file patterns."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$":
            i = _expand(text, i, env, out)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
