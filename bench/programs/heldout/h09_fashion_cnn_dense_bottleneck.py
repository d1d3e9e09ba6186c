# cause: insufficient_capacity
# CNN with a small embedding layer (wanted to plot it in 2D) - accuracy stuck ~60%
import numpy as np
import keras
from keras import layers
from workers.data import fashion_mnist_train

images, labels = fashion_mnist_train()
x = (images[:3000] / 255.0).astype("float32")[..., np.newaxis]
y = labels[:3000]

inp = keras.Input(shape=(28, 28, 1))
t = layers.Conv2D(32, (3, 3), activation="relu")(inp)
t = layers.MaxPooling2D((2, 2))(t)
t = layers.Conv2D(32, (3, 3), activation="relu")(t)
t = layers.MaxPooling2D((2, 2))(t)
t = layers.Flatten()(t)
t = layers.Dense(2, activation="relu", name="embedding")(t)  # FIX: t = layers.Dense(64, activation="relu", name="embedding")(t)
out = layers.Dense(10, activation="softmax")(t)
model = keras.Model(inp, out)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, batch_size=32, epochs=5, validation_split=0.2, verbose=0)
