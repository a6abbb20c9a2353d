"""Build the article's network by hand and train it in this process (no Ray), then look at a
digit it gets wrong.

    python examples/train_single_process.py --epochs 5 --run-dir runs/single
"""
import argparse
import sys

import numpy as np

from distnet import (Dense, DistnetError, LeakyReLU, Nesterov, Network, Quadratic, Softmax, Trainer,
                     XavierNormal, load_mnist)
from distnet.data import render_digit
from distnet.progress import TerminalReporter

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog="MNIST is read from --data-dir, else from $DISTNET_DATA_DIR, else downloaded into ~/.cache/distnet "
           "on first use.")
parser.add_argument("--epochs", type=int, default=5, help="epochs to train (default: %(default)s)")
parser.add_argument("--data-dir", help="the folder that holds MNIST's four IDX files, gzipped or not (or the "
                                       "folder above it, which holds mnist/)")
parser.add_argument("--run-dir", help="save the run here (config, history, best network, checkpoints); "
                                      "by default nothing is saved")


def main(args: argparse.Namespace) -> None:
    mnist = load_mnist(args.data_dir)
    network = Network([Dense(36, LeakyReLU()), Dense(14, LeakyReLU()), Dense(10, Softmax())],
                      input_size=784, cost=Quadratic(), initializer=XavierNormal(), seed=942457)
    trainer = Trainer(network, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=942457)
    result = trainer.fit(mnist.train, mnist.validation, epochs=args.epochs, eval_every=1,
                         run_dir=args.run_dir, reporter=TerminalReporter())  # progress goes to stderr

    best = result.best_network
    predicted = best.predict(mnist.test.images).argmax(axis=1)
    wrong = np.flatnonzero(predicted != mnist.test.labels)
    print(f"test error {len(wrong) / len(predicted):.2%} with the best network (epoch {result.best_epoch})")
    if result.run_dir:
        print(f"best network: {result.run_dir / 'best.npz'} (look closer: distnet show {result.run_dir})")

    shown = wrong[0]
    digit = mnist.test[shown]
    print(f"\nthe first test digit it gets wrong, test image {shown}:\n")
    print(render_digit(digit.pixels, f"{digit.header}, predicted {predicted[shown]}"))


if __name__ == "__main__":
    try:
        main(parser.parse_args())
    except DistnetError as e:  # each says what is wrong and how to fix it: no traceback needed
        sys.exit(f"error: {e}")
