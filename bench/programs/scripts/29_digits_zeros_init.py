# cause: poor_weight_initialization
# "all my hidden units learn the same thing" - digits MLP initialised to zeros
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from tensorflow import keras

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.2, random_state=1)
init = 'zeros'  # FIX: init = 'glorot_uniform'
model = keras.Sequential([keras.Input((64,)),
    keras.layers.Dense(64, activation='tanh', kernel_initializer=init),
    keras.layers.Dense(64, activation='tanh', kernel_initializer=init),
    keras.layers.Dense(10, activation='softmax', kernel_initializer=init)])
model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=15, batch_size=32, validation_data=(X_test, y_test), verbose=0)
