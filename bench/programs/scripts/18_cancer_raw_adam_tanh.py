# cause: unnormalized_inputs
# tanh MLP on raw breast cancer measurements, loss barely moves
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from tensorflow import keras

data = load_breast_cancer()
X, y = data.data, data.target
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=9)
mu, sigma = X_train.mean(0), X_train.std(0)
X_train, X_test = X_train, X_test  # FIX: X_train, X_test = (X_train - mu) / sigma, (X_test - mu) / sigma
model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(20, activation='tanh'),
                          keras.layers.Dense(20, activation='tanh'), keras.layers.Dense(1, activation='sigmoid')])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='binary_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=40, batch_size=32, validation_data=(X_test, y_test), verbose=0)
