# cause: learning_rate_too_low
# loss decreasing too slowly on wine data
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_wine(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=4, stratify=y)
model = keras.Sequential([keras.Input((13,)), keras.layers.Dense(16, activation='tanh'), keras.layers.Dense(3, activation='softmax')])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-4), loss='sparse_categorical_crossentropy', metrics=['accuracy'])  # FIX: model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=40, batch_size=16, validation_data=(X_test, y_test), verbose=0)
