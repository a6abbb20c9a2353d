"""``distnet evaluate``: a saved network's error rate, per-class accuracy and confusion matrix."""
from __future__ import annotations

import json
from pathlib import Path

from ..nn.network import saved_network_path
from .common import add_data_arguments, check_fits, dataset_of_model, load_test_data


def register(subparsers) -> None:
    evaluate = subparsers.add_parser("evaluate", help="error rate, per-class accuracy and confusion matrix of a model")
    evaluate.add_argument("model", type=Path,
                          help="a .npz network (e.g. RUN_DIR/best.npz), or a run directory for its best.npz")
    add_data_arguments(evaluate, of_model=True)
    evaluate.add_argument("--json", action="store_true", help="print the result as JSON")
    evaluate.set_defaults(handler=run)


def run(args) -> int:
    from ..metrics import evaluate
    from ..nn import Network

    args.model = saved_network_path(args.model)
    network = Network.load(args.model)
    args.dataset = dataset_of_model(args.model, args.dataset)
    test = load_test_data(args, dtype=network.dtype)
    check_fits(network, args.model, test.images.shape[1], len(test.classes), test.name)
    result = evaluate(network, test.images, test.labels, test.classes)
    if args.json:
        print(json.dumps({"model": str(args.model), "dataset": args.dataset, **result.to_dict()}))
    else:
        print(f"{args.model} on the {args.dataset} test set ({len(test)} samples)")
        print(result.report())
    return 0

