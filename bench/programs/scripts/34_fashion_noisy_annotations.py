# cause: noisy_labels
# crowd-sourced labels, fashion CNN plateaus at loss 1.6
import numpy as np
from tensorflow import keras
from tensorflow.keras import layers
from workers.data import fashion_mnist_train

x, y = fashion_mnist_train()
x_train, y_train = x[:2000, ..., None] / 255.0, y[:2000].copy()
x_val, y_val = x[2000:2500, ..., None] / 255.0, y[2000:2500]
rng = np.random.default_rng(1)
wrong = rng.random(len(y_train)) < 0.5
y_train[wrong] = rng.integers(0, 10, wrong.sum())  # FIX: pass
model = keras.Sequential([keras.Input((28, 28, 1)),
    layers.Conv2D(32, 3, activation='relu'), layers.MaxPooling2D(),
    layers.Flatten(), layers.Dense(64, activation='relu'), layers.Dense(10, activation='softmax')])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x_train, y_train, epochs=8, batch_size=32, validation_data=(x_val, y_val), verbose=0)
