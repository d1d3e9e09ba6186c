# cause: learning_rate_too_high
# digits: loss goes to 2.30 after the first epoch and never moves (dead relus?)
import numpy as np
from sklearn.datasets import load_digits
from tensorflow import keras

digits = load_digits()
X = digits.data / 16.0
y = keras.utils.to_categorical(digits.target, 10)
idx = np.random.RandomState(3).permutation(len(X))
X, y = X[idx], y[idx]

model = keras.models.Sequential()
model.add(keras.layers.Dense(256, activation="relu", input_shape=(64,)))
model.add(keras.layers.Dense(256, activation="relu"))
model.add(keras.layers.Dense(10, activation="softmax"))
model.compile(loss="categorical_crossentropy",
              optimizer=keras.optimizers.Adam(learning_rate=0.5),  # FIX: optimizer=keras.optimizers.Adam(learning_rate=0.001),
              metrics=["accuracy"])
model.fit(X, y, batch_size=32, epochs=10, validation_split=0.2, verbose=0)
