"""Your own network on Fashion-MNIST: another architecture, cost, initializer and optimizer than the
article's, with a learning-rate schedule; then the best network loaded back from its run directory,
scored class by class, and asked about a few test images. The run directory must be a new one (the
default, runs/fashion, only the first time).

    python examples/train_your_own_network.py --epochs 10 --run-dir runs/fashion
"""
import argparse
import sys

from distnet import (Adam, CosineDecay, CrossEntropy, Dense, DistnetError, HeNormal, Network, ReLU, Softmax,
                     Trainer, load_fashion_mnist)
from distnet.metrics import evaluate
from distnet.progress import TerminalReporter

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog="Fashion-MNIST is read from --data-dir, else from $DISTNET_DATA_DIR, else downloaded into "
           "~/.cache/distnet on first use.")
parser.add_argument("--epochs", type=int, default=10, help="epochs to train (default: %(default)s)")
parser.add_argument("--run-dir", default="runs/fashion",
                    help="a new folder for the run: config, history, best network, checkpoints "
                         "(default: %(default)s)")
parser.add_argument("--data-dir", help="the folder that holds Fashion-MNIST's four IDX files, gzipped or "
                                       "not (or the folder above it, which holds fashion-mnist/)")
parser.add_argument("--show", type=int, default=5, help="test images to classify at the end (default: %(default)s)")


def main(args: argparse.Namespace) -> None:
    fashion = load_fashion_mnist(args.data_dir)  # 28x28 pictures of clothes, 10 classes, MNIST's format
    network = Network([Dense(128, ReLU()), Dense(10, Softmax())], input_size=784,
                      cost=CrossEntropy(), initializer=HeNormal(), seed=1)
    trainer = Trainer(network, Adam(0.001), batch_size=64, seed=1,
                      schedule=CosineDecay())  # the learning rate falls from 0.001 towards 0 over the epochs
    # A window of as many evaluations as the run makes never stops it early; the best network is kept.
    result = trainer.fit(fashion.train, fashion.validation, epochs=args.epochs, eval_every=1,
                         window=args.epochs, run_dir=args.run_dir, reporter=TerminalReporter())

    # best.npz records what it was trained on, so the distnet commands name the classes too.
    saved = result.run_dir / "best.npz"
    best = Network.load(saved)
    print(f"the best network (epoch {result.best_epoch}) on the test set:\n")
    print(evaluate(best, fashion.test).report())

    print("\nsome test images:")
    test = fashion.test
    probabilities = best.predict(test.images[:args.show])
    for i, row in enumerate(probabilities):
        guess = row.argmax()
        verdict = "right" if guess == test.labels[i] else f"wrong, it is a {test.classes[test.labels[i]]}"
        print(f"  test image {i}: {test.classes[guess]} ({row[guess]:.0%} sure), {verdict}")
    print(f"\nbest network: {saved} (look closer: distnet show {saved}; classify a picture of your own: "
          f"distnet predict {saved} picture.png)")


if __name__ == "__main__":
    try:
        main(parser.parse_args())
    except DistnetError as e:  # each says what is wrong and how to fix it: no traceback needed
        sys.exit(f"error: {e}")
