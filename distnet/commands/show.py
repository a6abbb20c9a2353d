"""``distnet show``: the test images a network gets wrong most confidently, drawn in ASCII as the
original drew its digits, each beside the network's probability per class as in the article."""
from __future__ import annotations

import argparse
import json

from .common import add_data_arguments, add_model_argument, model_and_test_data, non_negative_int, probability

GAP = "   "  # between a digit's picture and its probability table


def register(subparsers: argparse._SubParsersAction) -> None:
    show = subparsers.add_parser(
        "show", help="draw the test images a model gets most confidently wrong, with its probabilities",
        description="Draw the misclassified test images the network is surest about (label, prediction "
                    "and the probability of each class); with --threshold, report the inputs where no "
                    "class reaches that probability as not recognized.")
    add_model_argument(show)
    add_data_arguments(show, of_model=True)
    show.add_argument("--confused", type=non_negative_int, default=5, metavar="N",
                      help="how many misclassified test images to draw (default: 5)")
    show.add_argument("--threshold", type=probability, metavar="P",
                      help="a class must reach probability P to count as recognized (e.g. 0.9)")
    show.add_argument("--json", action="store_true", help="print the result as JSON")
    show.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..data.digits import render_digit
    from ..metrics import class_label, confident_mistakes, evaluation_of, probability_table, recognition, recognized

    network, test = model_and_test_data(args)
    outputs = network.predict(test.images)
    evaluation = evaluation_of(outputs, test.labels, test.classes)
    chosen = confident_mistakes(outputs, test.labels, args.confused)
    sure = recognized(outputs[chosen], args.threshold)
    split = recognition(outputs, test.labels, args.threshold) if args.threshold is not None else None
    if args.json:
        print(json.dumps({
            "model": str(args.model), "dataset": args.dataset, "error_rate": evaluation.error_rate,
            "recognition": split.to_dict() if split else None, "classes": list(test.classes),
            "confused": [{"index": int(i), "label": int(test.labels[i]), "predicted": int(outputs[i].argmax()),
                          "recognized": bool(ok), "probabilities": outputs[i].astype(float).round(6).tolist()}
                         for i, ok in zip(chosen, sure)]}))
        return 0
    print(f"{args.model} on the {args.dataset} test set: error rate {100 * evaluation.error_rate:.2f}% "
          f"({evaluation.wrong} of {len(test)} wrong)")
    if split:
        print(split.report())
    if len(chosen):
        many = f"{len(chosen)} misclassified test images" if len(chosen) > 1 else "misclassified test image"
        print(f"\nthe {many} the network is surest about:")
    for rank, (i, ok) in enumerate(zip(chosen, sure), 1):
        label, predicted = int(test.labels[i]), int(outputs[i].argmax())
        verdict = (f"predicted {class_label(test.classes, predicted)}" if ok else
                   f"not recognized (best {class_label(test.classes, predicted)}, below {args.threshold:g})")
        picture = render_digit(test.images[i],
                               f"#{rank}  test image {i}: label {class_label(test.classes, label)}, {verdict}")
        table = probability_table(outputs[i], test.classes, {label: "label", predicted: "network"})
        print()
        print(side_by_side(picture.split("\n"), table, top=2))
    return 0


def side_by_side(left: list[str], right: list[str], top: int = 0) -> str:
    """``right``'s lines beside ``left``'s, starting at line ``top``."""
    width = max(len(line) for line in left[top:top + len(right)])
    lines = []
    for n in range(max(len(left), top + len(right))):
        text = left[n] if n < len(left) else ""
        extra = right[n - top] if 0 <= n - top < len(right) else ""
        lines.append((text.ljust(width) + GAP + extra).rstrip() if extra else text)
    return "\n".join(lines)
