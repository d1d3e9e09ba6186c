# cause: batch_size_too_large
# digits CNN, batch size 2048, accuracy 40% after 10 epochs
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorflow import keras

d = load_digits()
X_train, X_test, y_train, y_test = train_test_split((d.images / 16.0)[..., None], d.target, test_size=0.2, random_state=2)
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(16, 3, activation='relu'),
                          keras.layers.Flatten(), keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer=keras.optimizers.SGD(0.05), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
BATCH = 2048  # FIX: BATCH = 32
history = model.fit(X_train, y_train, epochs=10, batch_size=BATCH, validation_data=(X_test, y_test), verbose=0)
