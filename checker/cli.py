"""chainfire-check: check a history file for linearizability.

    chainfire-check HISTORY [--format jsonl|porcupine-jepsen|porcupine-kv]
                            [--model register|kv|etcd] [--timeout S]
                            [--html OUT.html] [--png OUT.png] [--json]

Prints the verdict and one line per partition; with --json, one JSON object.
Exit status: 0 Ok, 1 Illegal, 2 Unknown (time or memory budget ran out),
3 bad input (the message names the line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from checker.history import HistoryError, Operation, read_jsonl
from checker.result import CheckResult, Verdict

EXIT_BAD_INPUT = 3
FORMATS = ("jsonl", "porcupine-jepsen", "porcupine-kv")
MODEL_NAMES = ("register", "kv", "etcd")
_DEFAULT_MODEL = {"porcupine-jepsen": "register", "porcupine-kv": "kv", "jsonl": "etcd"}


def guess_format(path: Path) -> str:
    if path.suffix == ".log":
        return "porcupine-jepsen"
    if path.suffix == ".txt":
        return "porcupine-kv"
    return "jsonl"


def load(path: Path, file_format: str, model: Any) -> list[Operation]:
    """Read a history in `file_format`; JSON values are handed to the model's
    parse_input / parse_output when it has them."""
    from checker import readers

    if file_format == "porcupine-jepsen":
        return readers.read_porcupine_jepsen(path)
    if file_format == "porcupine-kv":
        return readers.read_porcupine_kv(path)
    operations = read_jsonl(path)
    parse_input = getattr(model, "parse_input", None)
    parse_output = getattr(model, "parse_output", None)
    if parse_input is None or parse_output is None:
        return operations
    converted = []
    for op in operations:
        try:
            output = None if op.unknown else parse_output(op.output)
            converted.append(replace(op, input=parse_input(op.input), output=output))
        except (KeyError, TypeError, ValueError) as error:
            raise HistoryError(f"operation {op.id}: {error}") from error
    return converted


def model_named(name: str) -> Any:
    if name == "etcd":
        from checker.etcd_model import EtcdModel

        return EtcdModel()
    from checker.models import MODELS

    return MODELS[name]


def run_check(operations: Sequence[Operation], model_name: str, model: Any,
              timeout_s: float | None) -> CheckResult:
    if model_name == "etcd":
        from checker.revision_check import check_etcd_history

        return check_etcd_history(list(operations), timeout_s=timeout_s)
    from checker.linearizability import check_operations

    return check_operations(list(operations), model, timeout_s=timeout_s)


def summary(result: CheckResult, path: Path, elapsed_s: float) -> list[str]:
    lines = [f"{path}: {result.verdict.value} ({result.model}, {len(result.partitions)} "
             f"partition(s), {elapsed_s:.3f} s)"]
    for part in result.partitions:
        line = f"  {part.name}: {part.verdict.value}, {part.operations} ops"
        if part.verdict == Verdict.ILLEGAL:
            line += (f"; longest linearizable prefix {len(part.linearization)} ops; "
                     f"cannot order ops {list(part.explanation)}")
        if part.reason:
            line += f"; {part.reason}"
        lines.append(line)
    return lines


def as_json(result: CheckResult, path: Path, elapsed_s: float) -> dict[str, Any]:
    return {
        "file": str(path), "verdict": result.verdict.value, "model": result.model,
        "elapsed_s": round(elapsed_s, 6),
        "partitions": [
            {"name": p.name, "verdict": p.verdict.value, "operations": p.operations,
             "linearization_length": len(p.linearization), "explanation": list(p.explanation),
             "reason": p.reason, "elapsed_s": round(p.elapsed_s, 6)}
            for p in result.partitions
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chainfire-check", description=__doc__.split("\n")[0])
    parser.add_argument("history", type=Path)
    parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
    parser.add_argument("--model", choices=MODEL_NAMES, help="default: from the format")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="give up with Unknown after S seconds")
    parser.add_argument("--html", type=Path, metavar="OUT", help="write a timeline page")
    parser.add_argument("--png", type=Path, metavar="OUT", help="write a timeline picture")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    file_format = args.format or guess_format(args.history)
    model_name = args.model or _DEFAULT_MODEL[file_format]
    model = model_named(model_name)
    try:
        operations = load(args.history, file_format, model)
    except HistoryError as error:
        print(f"chainfire-check: bad input in {args.history}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        print(f"chainfire-check: cannot read {args.history}: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    start = time.perf_counter()
    result = run_check(operations, model_name, model, args.timeout)
    elapsed_s = time.perf_counter() - start
    if args.json:
        print(json.dumps(as_json(result, args.history, elapsed_s), sort_keys=True))
    else:
        print("\n".join(summary(result, args.history, elapsed_s)))
    if args.html or args.png:
        from checker import visualize

        if args.html:
            visualize.write_html(args.html, operations, result, model)
        if args.png:
            visualize.write_png(args.png, operations, result, model)
    return result.verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
