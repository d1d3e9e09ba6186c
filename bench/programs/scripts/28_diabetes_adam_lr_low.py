# cause: learning_rate_too_low
# diabetes regression: MSE 29000 and dropping by 10 per epoch
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from tensorflow import keras

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=2)
model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(64, activation='relu'), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.Adam(1e-4), loss='mse')  # FIX: model.compile(optimizer=keras.optimizers.Adam(5e-2), loss='mse')
history = model.fit(X_train, y_train, epochs=60, batch_size=32, validation_data=(X_test, y_test), verbose=0)
