# cause: batch_size_too_small
# BatchNorm CNN with batch_size=2 (GPU memory...) trains badly
from tensorflow import keras
from tensorflow.keras import layers
from workers.data import fashion_mnist_train

x, y = fashion_mnist_train()
x_train, y_train = x[:1200, ..., None] / 255.0, y[:1200]
x_val, y_val = x[1200:1600, ..., None] / 255.0, y[1200:1600]
model = keras.Sequential([keras.Input((28, 28, 1)),
    layers.Conv2D(16, 3), layers.BatchNormalization(), layers.Activation('relu'), layers.MaxPooling2D(),
    layers.Conv2D(32, 3), layers.BatchNormalization(), layers.Activation('relu'), layers.MaxPooling2D(),
    layers.Flatten(), layers.Dense(10, activation='softmax')])
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x_train, y_train, epochs=4, batch_size=2, validation_data=(x_val, y_val), verbose=0)  # FIX: history = model.fit(x_train, y_train, epochs=4, batch_size=32, validation_data=(x_val, y_val), verbose=0)
