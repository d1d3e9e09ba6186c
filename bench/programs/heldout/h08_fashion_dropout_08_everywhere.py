# cause: excessive_regularization
# "I added dropout to stop overfitting, now train accuracy is stuck at 40%"
import numpy as np
import keras
from keras import layers
from workers.data import fashion_mnist_train

images, labels = fashion_mnist_train()
x_train, y_train = images[:3000].reshape(-1, 784) / 255.0, labels[:3000]
x_val, y_val = images[3000:4000].reshape(-1, 784) / 255.0, labels[3000:4000]

rate = 0.8  # FIX: rate = 0.2
model = keras.Sequential([
    keras.Input((784,)),
    layers.Dropout(rate),
    layers.Dense(256, activation="relu"),
    layers.Dropout(rate),
    layers.Dense(128, activation="relu"),
    layers.Dropout(rate),
    layers.Dense(64, activation="relu"),
    layers.Dropout(rate),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=6, batch_size=128, validation_data=(x_val, y_val), verbose=0)
