"""The device scripts' verdicts: each proof printed as ok or FAIL; `finish()` exits 1 when one failed."""

import json
import sys

failed = False


def need(cond: bool, what: str) -> None:
    global failed
    print(("ok  " if cond else "FAIL") + " " + what)
    failed = failed or not cond


def load(path: str):
    with open(path) as handle:
        return json.load(handle)


def finish() -> None:
    sys.exit(1 if failed else 0)
