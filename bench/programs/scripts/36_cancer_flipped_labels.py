# cause: noisy_labels
# tumor classifier, 40% of the labels were mis-entered
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
flip = np.random.default_rng(3).random(len(y_train)) < 0.4
y_train = np.where(flip, 1 - y_train, y_train)  # FIX: pass
model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(32, activation='relu'), keras.layers.Dense(1, activation='sigmoid')])
model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=30, batch_size=32, validation_data=(X_test, y_test), verbose=0)
