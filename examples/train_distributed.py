"""Train the article's network on MNIST with 2 Ray gradient workers, in a few lines.

    python examples/train_distributed.py
"""
from distnet import DistributedTrainer, load_mnist, get_preset

mnist = load_mnist()                                   # downloads (and verifies) on first use
preset = get_preset("seed")                            # 784-36-14-10, Nesterov(0.02, 0.87), L2 1e-4
network = preset.network(seed=942457)
trainer = DistributedTrainer(network, preset.build_optimizer(), l2=preset.l2,
                             batch_size=preset.batch_size, workers=2, seed=942457)
result = trainer.fit(mnist.train, mnist.validation, epochs=10, eval_every=5)

print(f"best validation error {result.best_error:.2%} at epoch {result.best_epoch}")
print(f"test error {result.best_network.error_rate(mnist.test.images, mnist.test.labels):.2%}")
