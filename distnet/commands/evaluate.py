"""``distnet evaluate``: a saved network's error rate, per-class accuracy and confusion matrix."""
from __future__ import annotations

import argparse
import json

from ..checks import count
from .common import add_data_arguments, add_model_argument, model_and_test_data


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate", help="error rate, per-class accuracy and confusion matrix of a model",
        description="Evaluate a saved network (or a run directory's best network) on the test set of the data set it "
                    "was trained on: its error rate, the accuracy of each class and the confusion matrix.")
    add_model_argument(evaluate)
    add_data_arguments(evaluate, of_model=True)
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..metrics import evaluate

    network, test = model_and_test_data(args)
    result = evaluate(network, test.images, test.labels, test.classes)
    if args.json:
        print(json.dumps({"model": str(args.model), "dataset": args.dataset, **result.to_dict()}))
    else:
        print(f"{args.model} on the {args.dataset} test set ({count(len(test), 'sample')})")
        print(result.report())
    return 0
