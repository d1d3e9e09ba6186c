# cause: learning_rate_too_high
# Adam with lr=3 on breast cancer data, accuracy 63% (always predicts one class)
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_breast_cancer(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=6)
sc = StandardScaler(); X_tr = sc.fit_transform(X_tr); X_te = sc.transform(X_te)
model = keras.Sequential([keras.Input((30,)), keras.layers.Dense(64, activation='relu'),
                          keras.layers.Dense(64, activation='relu'), keras.layers.Dense(1, activation='sigmoid')])
model.compile(optimizer=keras.optimizers.Adam(learning_rate=3.0), loss='binary_crossentropy', metrics=['accuracy'])  # FIX: model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001), loss='binary_crossentropy', metrics=['accuracy'])
history = model.fit(X_tr, y_tr, epochs=30, batch_size=32, validation_data=(X_te, y_te), verbose=0)
