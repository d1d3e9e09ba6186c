# cause: noisy_labels
# iris: shuffled X and y separately before the split, now accuracy is ~35%
import numpy as np
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle
from tensorflow import keras

X, y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)
X, y = shuffle(X, random_state=0), shuffle(y, random_state=1)  # FIX: X, y = shuffle(X, y, random_state=0)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation='relu'),
                          keras.layers.Dense(3, activation='softmax')])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X, y, epochs=60, batch_size=16, validation_split=0.3, verbose=0)
