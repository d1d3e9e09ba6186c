# cause: unnormalized_inputs
# Keras MLP on breast cancer: accuracy stuck at 62%
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=4)
scaler = StandardScaler().fit(X_train)
X_train, X_test = X_train, X_test  # FIX: X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(32, activation='relu'),
                          keras.layers.Dense(16, activation='relu'), keras.layers.Dense(1, activation='sigmoid')])
model.compile(optimizer=keras.optimizers.SGD(0.01), loss='binary_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=30, batch_size=32, validation_data=(X_test, y_test), verbose=0)
