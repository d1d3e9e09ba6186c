# cause: insufficient_capacity
# digits with one hidden unit "to keep it simple"
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorflow import keras

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
hidden = 1  # FIX: hidden = 32
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(hidden, activation='relu'), keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_tr, y_tr, epochs=30, batch_size=32, validation_data=(X_te, y_te), verbose=0)
