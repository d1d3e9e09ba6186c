# cause: unnormalized_inputs
# fashion mnist CNN with SGD: loss goes to nan or stays at 2.30
import numpy as np
from tensorflow import keras
from tensorflow.keras import layers
from workers.data import fashion_mnist_train

x, y = fashion_mnist_train()
x_train, y_train = x[:2000].astype('float32')[..., None], y[:2000]
x_val, y_val = x[2000:2500].astype('float32')[..., None], y[2000:2500]
x_train, x_val = x_train, x_val  # FIX: x_train, x_val = x_train / 255.0, x_val / 255.0
model = keras.Sequential([
    keras.Input((28, 28, 1)),
    layers.Conv2D(16, 3, activation='relu'), layers.MaxPooling2D(),
    layers.Conv2D(32, 3, activation='relu'), layers.MaxPooling2D(),
    layers.Flatten(), layers.Dense(64, activation='relu'), layers.Dense(10, activation='softmax'),
])
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x_train, y_train, epochs=6, batch_size=32, validation_data=(x_val, y_val), verbose=0)
