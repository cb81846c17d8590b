"""The device scripts' verdicts: each proof printed as ok or FAIL; `finish()` exits 1 when one failed. A proof
the machine cannot give (one GPU where it needs two) is `skip`ped: printed, and appended to $SKIPPED_FILE when
set, so the script's last line can say that not everything was proven."""

import json
import os
import sys

failed = False


def need(cond: bool, what: str) -> None:
    global failed
    print(("ok  " if cond else "FAIL") + " " + what)
    failed = failed or not cond


def skip(what: str) -> None:
    print(f"skip {what}")
    if os.environ.get("SKIPPED_FILE"):
        with open(os.environ["SKIPPED_FILE"], "a") as handle:
            handle.write(what + "\n")


def load(path: str):
    with open(path) as handle:
        return json.load(handle)


def finish() -> None:
    sys.exit(1 if failed else 0)
