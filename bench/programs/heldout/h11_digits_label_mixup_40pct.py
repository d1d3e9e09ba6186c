# cause: noisy_labels
# digits MLP: val accuracy much lower than on the sklearn tutorial (~40% of labels re-keyed)
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import keras
from keras import layers

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=11)
rng = np.random.default_rng(5)
mixed = rng.random(len(y_train)) < 0.4  # FIX: mixed = rng.random(len(y_train)) < 0.0
y_train[mixed] = rng.permutation(y_train[mixed])

inputs = keras.Input(shape=(64,))
h = layers.Dense(256, activation="relu")(inputs)
h = layers.Dense(256, activation="relu")(h)
outputs = layers.Dense(10, activation="softmax")(h)
model = keras.Model(inputs, outputs)
model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, epochs=60, batch_size=32, validation_data=(X_test, y_test), verbose=0)
