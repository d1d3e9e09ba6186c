# cause: learning_rate_too_low
# AdamW + ExponentialDecay on fashion-mnist: training stops improving after epoch 1
import gzip
import numpy as np
import keras
from keras import layers

with gzip.open("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") as f:
    X = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28 * 28)[:4000] / 255.0
with gzip.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz") as f:
    Y = np.frombuffer(f.read(), np.uint8, offset=8)[:4000]

schedule = keras.optimizers.schedules.ExponentialDecay(
    initial_learning_rate=1e-3,
    decay_steps=10,
    decay_rate=0.01,  # FIX: decay_rate=0.96,
)
model = keras.Sequential([
    keras.Input((784,)),
    layers.Dense(128, activation="relu"),
    layers.Dense(64, activation="relu"),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=1e-4),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X, Y, batch_size=64, epochs=6, validation_split=0.25, verbose=0)
