# cause: poor_weight_initialization
# CNN loss starts at 300 and stays high
from tensorflow import keras
from tensorflow.keras import layers, initializers
from workers.data import fashion_mnist_train

x, y = fashion_mnist_train()
x_train, y_train = x[:2000, ..., None] / 255.0, y[:2000]
x_val, y_val = x[2000:2500, ..., None] / 255.0, y[2000:2500]
init = initializers.RandomNormal(mean=0.0, stddev=1.0)  # FIX: init = 'he_normal'
model = keras.Sequential([keras.Input((28, 28, 1)),
    layers.Conv2D(32, 3, activation='relu', kernel_initializer=init), layers.MaxPooling2D(),
    layers.Conv2D(32, 3, activation='relu', kernel_initializer=init), layers.MaxPooling2D(),
    layers.Flatten(), layers.Dense(64, activation='relu', kernel_initializer=init),
    layers.Dense(10, activation='softmax', kernel_initializer=init)])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x_train, y_train, epochs=6, batch_size=64, validation_data=(x_val, y_val), verbose=0)
