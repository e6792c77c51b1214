"""The seed's PyTorch example (section 4.2), run by fastnn.

The code between the markers is the seed's with the imports changed
(``torch`` reads ``fastnn``) and two corrections, each marked ``# fastnn:``:

* ``forward`` returns the logits. The seed ends it with ``torch.softmax`` and
  then uses ``nn.CrossEntropyLoss``, which applies log-softmax itself: the
  softmax would be applied twice, squashing the logits into [0, 1] so the loss
  can barely move and the gradients all but vanish. fastnn, like PyTorch,
  expects logits (and warns when it is handed probabilities).
* The seed's loop takes one full-batch step per epoch on an undefined
  ``x_train``; here each epoch is a pass of mini-batches of 32 over MNIST,
  which is what makes a few epochs enough.

Run: ``python examples/pytorch_mnist.py [MNIST_DIR] [EPOCHS]`` (MNIST_DIR holds
the four IDX files; default ``$FASTNN_DATA/mnist`` or
``~/.fastnn/datasets/mnist``, downloaded when missing; EPOCHS defaults to the
seed's 5). Prints the test accuracy after each epoch.
"""
import sys

import numpy as np

from fastnn.datasets import mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data(sys.argv[1] if len(sys.argv) > 1 else None)
# Pixels scaled to [0, 1], then standardised with MNIST's mean and standard
# deviation (0.1307, 0.3081), as PyTorch's MNIST examples do.
x_train = ((x_train.reshape(-1, 784) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
x_test = ((x_test.reshape(-1, 784) / 255.0 - 0.1307) / 0.3081).astype(np.float32)
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
batch_size = 32

# ---- the seed's example, section 4.2 -------------------------------------------
import fastnn as torch
import fastnn.nn as nn
import fastnn.optim as optim

torch.manual_seed(0)  # fastnn: reproducible initial weights and shuffles


# 定义神经网络的结构
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = nn.Linear(784, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        # fastnn: no softmax here. CrossEntropyLoss applies log-softmax to the
        # logits itself; softmax followed by it is a double softmax.
        x = self.fc3(x)
        return x


# 实例化模型
model = Net()
# 定义损失函数和优化器
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.001)
# 训练模型
rng = np.random.default_rng(0)
for epoch in range(epochs):
    order = rng.permutation(len(x_train))  # fastnn: mini-batches of a shuffled epoch
    for start in range(0, len(x_train), batch_size):
        batch = order[start:start + batch_size]
        optimizer.zero_grad()
        output = model(x_train[batch])
        loss = criterion(output, y_train[batch])
        loss.backward()
        optimizer.step()
    # ---- end of the seed's example (the evaluation below is ours) ---------------
    with torch.no_grad():
        predicted = model(x_test).numpy().argmax(axis=1)
    accuracy = float(np.mean(predicted == y_test))
    print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}, test accuracy {accuracy:.4f}")
