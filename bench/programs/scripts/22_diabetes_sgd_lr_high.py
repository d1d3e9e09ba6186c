# cause: learning_rate_too_high
# regression loss becomes nan with SGD
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from tensorflow import keras

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=8)
model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(32, activation='relu'), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss='mse')  # FIX: model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss='mse')
history = model.fit(X_train, y_train, epochs=60, batch_size=32, validation_data=(X_test, y_test), verbose=0)
