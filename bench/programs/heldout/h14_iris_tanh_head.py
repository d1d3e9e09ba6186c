# cause: output_loss_mismatch
# iris with one-hot labels, loss goes negative/erratic, accuracy ~33%
import numpy as np
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

iris = load_iris()
perm = np.random.default_rng(42).permutation(150)
X = StandardScaler().fit_transform(iris.data)[perm]
Y = keras.utils.to_categorical(iris.target[perm], num_classes=3)

inp = keras.Input(shape=(4,))
hidden = keras.layers.Dense(16, activation="relu")(inp)
out = keras.layers.Dense(3, activation="tanh")(hidden)  # FIX: out = keras.layers.Dense(3, activation="softmax")(hidden)
model = keras.Model(inp, out)
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy", metrics=["accuracy"])
model.fit(X, Y, epochs=50, batch_size=8, validation_split=0.2, verbose=0)
