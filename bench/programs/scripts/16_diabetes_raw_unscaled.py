# cause: unnormalized_inputs
# diabetes regression on the original (unscaled) columns: R^2 negative
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_diabetes(return_X_y=True, scaled=False)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
sc = StandardScaler().fit(X_train)
X_train, X_test = X_train, X_test  # FIX: X_train, X_test = sc.transform(X_train), sc.transform(X_test)
model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(32, activation='relu'),
                          keras.layers.Dense(16, activation='relu'), keras.layers.Dense(1)])
model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9), loss='mse')
history = model.fit(X_train, y_train, epochs=60, batch_size=32, validation_data=(X_test, y_test), verbose=0)
