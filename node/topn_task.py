"""Count the N most common words in a text file (the Azure Batch Python tutorial task).

Runs on a compute node with only the standard library (python3 >= 3.8):

    python3 topn_task.py --filepath taskdata0.txt --numwords 3

Words are whitespace-separated tokens with ASCII punctuation stripped from both ends; empty
results are dropped and case is kept ("The" and "the" are different words). The top N are
ranked by count, ties in order of first occurrence. The result is written to
``<stem>_OUTPUT<suffix>`` (named after the input's base name) in the current directory, followed
by the Batch node, task, job and pool ids taken from the AZ_BATCH_* environment variables.
"""

from __future__ import annotations

import argparse
import collections
import os
import string
import sys

RULE = "-" * 30


def positive_int(text: str) -> int:
    """An argparse type: a whole number greater than zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid positive integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def top_words(text: str, numwords: int) -> list[tuple[str, int]]:
    """The ``numwords`` most common words of ``text``, ties in order of first occurrence."""
    words = (token.strip(string.punctuation) for token in text.split())
    counts = collections.Counter(word for word in words if word)
    # most_common orders equal counts by first insertion, i.e. first occurrence in the text.
    return counts.most_common(numwords)


def output_name(filepath: str) -> str:
    """``dir/taskdata0.txt`` -> ``taskdata0_OUTPUT.txt``."""
    stem, suffix = os.path.splitext(os.path.basename(filepath))
    return f"{stem}_OUTPUT{suffix}"


def render(ranked: list[tuple[str, int]]) -> str:
    """The output file's text, in the tutorial's format."""
    env = os.environ.get
    lines = ["Word\tCount", RULE]
    lines += [f"{word}:\t{count}" for word, count in ranked]
    lines += [
        RULE,
        "Node: " + env("AZ_BATCH_NODE_ID", ""),
        "Task: " + env("AZ_BATCH_TASK_ID", ""),
        "Job:  " + env("AZ_BATCH_JOB_ID", ""),
        "Pool: " + env("AZ_BATCH_POOL_ID", ""),
    ]
    return "".join(line + "\n" for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the N most common words of a text file.")
    parser.add_argument("--filepath", required=True, help="the input text file (UTF-8)")
    parser.add_argument("--numwords", required=True, type=positive_int, help="how many words to report")
    args = parser.parse_args(argv)

    try:
        with open(args.filepath, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"{parser.prog}: cannot read {args.filepath!r}: {reason}", file=sys.stderr)
        return 1

    target = output_name(args.filepath)
    try:
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(render(top_words(text, args.numwords)))
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"{parser.prog}: cannot write {target!r}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
