"""Run one benchmark case in this (fresh) process and print its result as the last line.

``python -m benchmarks.case MODULE FUNCTION '{"keyword": "arguments"}'``; :mod:`benchmarks.speed`
starts one such process per case, so that each case has its own thread settings (read by BLAS
when it loads) and its own peak memory.
"""
from __future__ import annotations

import importlib
import json
import sys

PREFIX = "BENCHMARK-RESULT "


def main(argv: list[str]) -> None:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return
    if len(argv) != 3:
        sys.exit(f"usage: python -m benchmarks.case MODULE FUNCTION JSON_ARGUMENTS (see --help); got {len(argv)} arguments")
    module, function, arguments = argv
    run = getattr(importlib.import_module(f"benchmarks.{module}"), function)
    try:
        keywords = json.loads(arguments)
    except json.JSONDecodeError as e:
        sys.exit(f"the arguments must be a JSON object, such as '{{\"workload\": \"article\"}}': {e}")
    result = run(**keywords)
    print(PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
