# cause: kernel_size_mismatch
# digits 8x8 CNN, I used the same 9x9 kernels as in my 28x28 model
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import keras
from keras import layers

digits = load_digits()
images = digits.images[..., None].astype("float32") / 16.0
x_tr, x_te, y_tr, y_te = train_test_split(images, digits.target, test_size=0.2, random_state=3)

inputs = keras.Input((8, 8, 1))
x = layers.Conv2D(8, kernel_size=9, padding="same", activation="relu")(inputs)  # FIX: x = layers.Conv2D(8, kernel_size=3, padding="same", activation="relu")(inputs)
x = layers.MaxPooling2D(2)(x)
x = layers.Conv2D(16, kernel_size=9, padding="same", activation="relu")(x)  # FIX: x = layers.Conv2D(16, kernel_size=3, padding="same", activation="relu")(x)
x = layers.GlobalMaxPooling2D()(x)
outputs = layers.Dense(10, activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_tr, y_tr, epochs=12, batch_size=32, validation_data=(x_te, y_te), verbose=0)
