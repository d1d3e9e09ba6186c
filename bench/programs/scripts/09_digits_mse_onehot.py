# cause: output_loss_mismatch
# MLP on digits learns very slowly with SGD
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorflow import keras

X, y = load_digits(return_X_y=True)
X = X / 16.0
Y = keras.utils.to_categorical(y, 10)
x_tr, x_te, y_tr, y_te = train_test_split(X, Y, test_size=0.25, random_state=0)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation='sigmoid'),
                          keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss='mean_squared_error', metrics=['accuracy'])  # FIX: model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss='categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x_tr, y_tr, epochs=15, batch_size=32, validation_data=(x_te, y_te), verbose=0)
