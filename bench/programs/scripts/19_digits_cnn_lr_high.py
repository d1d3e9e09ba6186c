# cause: learning_rate_too_high
# CNN on digits: loss jumps to nan after the first epoch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorflow import keras

d = load_digits()
X = (d.images / 16.0)[..., None]
X_train, X_test, y_train, y_test = train_test_split(X, d.target, test_size=0.2, random_state=0)
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(32, 3, activation='relu', padding='same'),
                          keras.layers.Flatten(), keras.layers.Dense(10, activation='softmax')])
opt = keras.optimizers.SGD(learning_rate=3.0)  # FIX: opt = keras.optimizers.SGD(learning_rate=0.05)
model.compile(optimizer=opt, loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=12, batch_size=32, validation_data=(X_test, y_test), verbose=0)
