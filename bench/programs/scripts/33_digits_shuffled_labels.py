# cause: noisy_labels
# digits CNN: training loss stays at 1.5 although the model is big enough
import numpy as np
from sklearn.datasets import load_digits
from tensorflow import keras

d = load_digits()
X, y = (d.images / 16.0)[..., None], d.target.copy()
rng = np.random.default_rng(0)
X_train, y_train, X_test, y_test = X[:1300], y[:1300], X[1300:], y[1300:]
# labels for most of the export came from a different spreadsheet
part = rng.permutation(1300)[:1000]
y_train[part] = rng.permutation(y_train[part])  # FIX: pass
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(32, 3, activation='relu', padding='same'),
                          keras.layers.MaxPooling2D(), keras.layers.Flatten(),
                          keras.layers.Dense(64, activation='relu'), keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=15, batch_size=32, validation_data=(X_test, y_test), verbose=0)
