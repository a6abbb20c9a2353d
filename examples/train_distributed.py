"""Train the article's network on MNIST with Ray gradient workers, in a few lines.

    python examples/train_distributed.py --epochs 10 --workers 2 --run-dir runs/distributed
"""
import argparse
import sys

from distnet import DistnetError, DistributedTrainer, get_preset, load_mnist
from distnet.progress import TerminalReporter

parser = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog="MNIST is read from --data-dir, else from $DISTNET_DATA_DIR, else downloaded into ~/.cache/distnet "
           "on first use.")
parser.add_argument("--epochs", type=int, default=10, help="epochs to train (default: %(default)s)")
parser.add_argument("--workers", type=int, default=2,
                    help="gradient-worker actors; each computes the gradient of its share of every "
                         "mini-batch (default: %(default)s)")
parser.add_argument("--address", help="join a running Ray cluster ('auto' or HOST:PORT); by default "
                                      "the cluster $RAY_ADDRESS names, if set, and otherwise a Ray "
                                      "started inside this process, stopped at the end")
parser.add_argument("--data-dir", help="the folder that holds MNIST's four IDX files, gzipped or not (or the "
                                       "folder above it, which holds mnist/)")
parser.add_argument("--run-dir", help="save the run here (config, history, best network, checkpoints); "
                                      "by default nothing is saved")


def main(args: argparse.Namespace) -> None:
    mnist = load_mnist(args.data_dir)
    preset = get_preset("seed")                            # 784-36-14-10, Nesterov(0.02, 0.87), L2 1e-4
    network = preset.build_network(seed=942457)
    trainer = DistributedTrainer(network, preset.build_optimizer(), l2=preset.l2, batch_size=preset.batch_size,
                                 workers=args.workers, address=args.address, seed=942457)
    print("starting the Ray actors (and Ray itself, unless a cluster is joined): seconds before the first epoch "
          "(on a small or busy machine, tens)", file=sys.stderr)
    result = trainer.fit(mnist.train, mnist.validation, epochs=args.epochs, eval_every=preset.eval_every,
                         window=preset.window, run_dir=args.run_dir,   # the article's stop rule
                         reporter=TerminalReporter())                  # progress goes to stderr

    test_error = result.best_network.error_rate(mnist.test.images, mnist.test.labels)
    print(f"test error {test_error:.2%} with the best network (epoch {result.best_epoch})")
    if result.run_dir:
        print(f"best network: {result.run_dir / 'best.npz'} (look closer: distnet show {result.run_dir})")


if __name__ == "__main__":
    try:
        main(parser.parse_args())
    except DistnetError as e:  # each says what is wrong and how to fix it: no traceback needed
        sys.exit(f"error: {e}")
