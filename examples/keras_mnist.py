"""The seed's Keras example (section 4.1), run by fastnn.

The code between the markers is the seed's, verbatim, except that ``tf.keras``
reads ``fastnn`` (and ``import tensorflow as tf`` reads ``import fastnn``). The
seed leaves ``x_train``/``y_train`` undefined; here they come from
``fastnn.datasets.mnist``, flattened to 784 features and scaled to [0, 1], and the
trained model is measured on the test set at the end.

Run: ``python examples/keras_mnist.py [MNIST_DIR]`` (MNIST_DIR holds the four IDX
files; default ``$FASTNN_DATA/mnist`` or ``~/.fastnn/datasets/mnist``, downloaded
when missing).
"""
import sys

from fastnn.datasets import mnist

(x_train, y_train), (x_test, y_test) = mnist.load_data(sys.argv[1] if len(sys.argv) > 1 else None)
x_train = x_train.reshape(-1, 784) / 255.0
x_test = x_test.reshape(-1, 784) / 255.0

# ---- the seed's example, section 4.1 -------------------------------------------
import fastnn
# 定义神经网络的结构
model = fastnn.Sequential([
fastnn.layers.Dense(64, activation='relu', input_shape=(784,)),
fastnn.layers.Dense(64, activation='relu'),
fastnn.layers.Dense(10, activation='softmax')
])
# 编译模型
model.compile(optimizer='adam',
loss='sparse_categorical_crossentropy',
metrics=['accuracy'])
# 训练模型
model.fit(x_train, y_train, epochs=5)
# ---- end of the seed's example -------------------------------------------------

test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
print(f"test loss {test_loss:.4f}, test accuracy {test_accuracy:.4f}")
