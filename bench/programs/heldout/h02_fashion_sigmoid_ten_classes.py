# cause: output_loss_mismatch
# fashion-mnist MLP, 10 sigmoid outputs (copied from a multi-label example)
import gzip
import numpy as np
import keras
from keras import layers

root = "/usr/share/datasets/fashion-mnist/"
with gzip.open(root + "train-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
with gzip.open(root + "train-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
x = images[:3000].astype("float32") / 255.0
y = labels[:3000].astype("int64")

model = keras.Sequential([
    keras.Input(shape=(784,)),
    layers.Dense(128, activation="relu"),
    layers.Dense(10, activation="sigmoid"),  # FIX: layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=5, batch_size=64, validation_split=0.2, verbose=0)
