"""Build the article's network by hand and train it in this process (no Ray), then look at a
digit it gets wrong.

    python examples/train_single_process.py
"""
import numpy as np

from distnet import (Dense, LeakyReLU, Nesterov, Network, Quadratic, Softmax, Trainer, XavierNormal,
                     load_mnist)

mnist = load_mnist()
network = Network([Dense(36, LeakyReLU()), Dense(14, LeakyReLU()), Dense(10, Softmax())],
                  input_size=784, cost=Quadratic(), initializer=XavierNormal(), seed=942457)
trainer = Trainer(network, Nesterov(0.02, 0.87), l2=1e-4, batch_size=32, seed=942457)
result = trainer.fit(mnist.train, mnist.validation, epochs=5, eval_every=1)

best = result.best_network
predicted = best.predict(mnist.test.images).argmax(axis=1)
wrong = np.flatnonzero(predicted != mnist.test.labels)
print(f"test error {len(wrong) / len(predicted):.2%}")
print(mnist.test[wrong[0]], f"predicted: {predicted[wrong[0]]}")
