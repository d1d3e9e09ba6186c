# cause: output_loss_mismatch
# small CNN on fashion mnist, loss stuck, accuracy 0.1
import numpy as np
import tensorflow as tf
from workers.data import fashion_mnist_train

x, y = fashion_mnist_train()
x = (x[:2000] / 255.0)[..., None].astype('float32')
y = y[:2000]
model = tf.keras.Sequential([
    tf.keras.Input(shape=(28, 28, 1)),
    tf.keras.layers.Conv2D(16, (3, 3), activation='relu'),
    tf.keras.layers.MaxPooling2D((2, 2)),
    tf.keras.layers.Conv2D(32, (3, 3), activation='relu'),
    tf.keras.layers.MaxPooling2D((2, 2)),
    tf.keras.layers.Flatten(),
    tf.keras.layers.Dense(10, activation='relu'),  # FIX: tf.keras.layers.Dense(10, activation='softmax'),
])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x, y, epochs=6, batch_size=64, validation_split=0.2, verbose=0)
