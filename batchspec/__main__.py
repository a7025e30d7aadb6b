"""`batchspec` and `python -m batchspec`: the command line, with the garbage collector kept out of
its start and its exit.

Importing the CLI's libraries (azure, aiohttp, jsonschema, jinja2, rich) makes several hundred
thousand objects that live as long as the command, and exiting makes the collector walk them all
once more: ~0.15 s of a 0.7 s converged apply. They are set aside (`gc.freeze`) once imported
and again before the interpreter exits; what the command makes meanwhile is collected as usual.
"""

import gc


def main() -> None:
    gc.disable()
    try:
        from batchspec.cli import main as run
    finally:
        gc.freeze()
        gc.enable()
    try:
        run()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
