# cause: overfitting
# val_loss goes up after epoch 20, training 100%
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=60, random_state=1)
sc = StandardScaler().fit(X_train); X_train, X_test = sc.transform(X_train), sc.transform(X_test)
model = keras.Sequential([keras.Input((30,)),
    keras.layers.Dense(512, activation='relu'), keras.layers.Dense(512, activation='relu'),
    keras.layers.Dense(1, activation='sigmoid')])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='binary_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=100, batch_size=16, validation_data=(X_test, y_test), verbose=0)  # FIX: history = model.fit(X_train, y_train, epochs=15, batch_size=16, validation_data=(X_test, y_test), verbose=0)
