"""The three steps of specs/pipeline.yaml, run on compute nodes with only the standard library
(python3 >= 3.8):

    python3 pipeline_task.py count --filepath taskdata0.txt --out taskdata0.json
    python3 pipeline_task.py merge --counts counts --numwords 3 --out merged.json
    python3 pipeline_task.py report --merged merged.json --out report.txt

`count` writes how often each word of one text file occurs (words as the tutorial's
topn_task.py counts them) as JSON; `merge` adds up every count file of a folder and keeps the
top N across all files; `report` turns the merged counts into one line of text.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

from topn_task import positive_int, top_words


def count(filepath: str) -> dict:
    with open(filepath, encoding="utf-8", errors="replace") as f:
        text = f.read()
    every = top_words(text, len(text))  # as many as there can be: all of them, most common first
    return {"file": os.path.basename(filepath), "counts": [[word, n] for word, n in every]}


def merge(folder: str, numwords: int) -> dict:
    """The counts of every *.json file below `folder`, added up; ties in order of file name and
    then of rank, so the result is the same on every node."""
    total: collections.Counter = collections.Counter()
    files = []
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(n for n in names if n.endswith(".json")):
            with open(os.path.join(root, name), encoding="utf-8") as f:
                counted = json.load(f)
            files.append(counted["file"])
            for word, n in counted["counts"]:
                total[word] += n
    return {"files": files, "top": [[word, n] for word, n in total.most_common(numwords)]}


def report(merged: dict) -> str:
    words = ", ".join(f"{word} ({n})" for word, n in merged["top"])
    return f"{len(merged['files'])} files; most common words: {words}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A step of the top-N words pipeline.")
    steps = parser.add_subparsers(dest="step", required=True)
    step = steps.add_parser("count", help="how often each word of one file occurs, as JSON")
    step.add_argument("--filepath", required=True)
    step.add_argument("--out", required=True)
    step = steps.add_parser("merge", help="add up the count files of a folder")
    step.add_argument("--counts", required=True, help="the folder of count files")
    step.add_argument("--numwords", required=True, type=positive_int)
    step.add_argument("--out", required=True)
    step = steps.add_parser("report", help="one line from the merged counts")
    step.add_argument("--merged", required=True)
    step.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    try:
        if args.step == "count":
            text = json.dumps(count(args.filepath), sort_keys=True)
        elif args.step == "merge":
            text = json.dumps(merge(args.counts, args.numwords), sort_keys=True)
        else:
            with open(args.merged, encoding="utf-8") as f:
                text = report(json.load(f))
        with open(args.out, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except (OSError, ValueError, KeyError) as exc:
        print(f"{parser.prog} {args.step}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
