# cause: batch_size_too_large
# batch_size=len(X_train) because "it is faster"; accuracy only 70%
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=10)
sc = StandardScaler().fit(X_train); X_train, X_test = sc.transform(X_train), sc.transform(X_test)
model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(16, activation='relu'), keras.layers.Dense(1, activation='sigmoid')])
model.compile(optimizer='sgd', loss='binary_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=20, batch_size=len(X_train), validation_data=(X_test, y_test), verbose=0)  # FIX: history = model.fit(X_train, y_train, epochs=20, batch_size=16, validation_data=(X_test, y_test), verbose=0)
