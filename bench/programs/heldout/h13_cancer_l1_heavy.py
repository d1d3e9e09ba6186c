# cause: excessive_regularization
# breast cancer: added L1 to get sparse weights, now it predicts one class
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
import keras
from keras import layers, regularizers

X, y = load_breast_cancer(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=4)
scaler = StandardScaler()
X_tr = scaler.fit_transform(X_tr)
X_va = scaler.transform(X_va)

reg = regularizers.l1(1.0)  # FIX: reg = regularizers.l1(1e-4)
model = keras.Sequential([
    keras.Input((30,)),
    layers.Dense(32, activation="relu", kernel_regularizer=reg),
    layers.Dense(1, activation="sigmoid", kernel_regularizer=reg),
])
model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
model.fit(X_tr, y_tr, epochs=20, batch_size=32, validation_data=(X_va, y_va), verbose=0)
