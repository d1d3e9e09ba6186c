# cause: learning_rate_too_low
# digits MLP: accuracy increases very slowly
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorflow import keras

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=3)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation='relu'),
                          keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-4), loss='sparse_categorical_crossentropy', metrics=['accuracy'])  # FIX: model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=20, batch_size=32, validation_data=(X_test, y_test), verbose=0)
