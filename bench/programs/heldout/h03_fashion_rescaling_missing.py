# cause: unnormalized_inputs
# Functional CNN on fashion-mnist with RMSprop, "accuracy stuck around 10-40%"
import gzip
import numpy as np
import keras
from keras import layers

def load(kind):
    root = "/usr/share/datasets/fashion-mnist/"
    with gzip.open(f"{root}{kind}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(f"{root}{kind}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return x.astype("float32"), y.astype("int32")

x_train, y_train = load("train")
x_train, y_train = x_train[:5000], y_train[:5000]

inputs = keras.Input(shape=(28, 28, 1))
x = inputs  # FIX: x = layers.Rescaling(1.0 / 255)(inputs)
x = layers.Conv2D(16, 3, activation="relu")(x)
x = layers.MaxPooling2D()(x)
x = layers.Conv2D(32, 3, activation="relu")(x)
x = layers.MaxPooling2D()(x)
x = layers.Flatten()(x)
x = layers.Dense(64, activation="relu")(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=64, epochs=5, validation_split=0.2, verbose=0)
