# cause: learning_rate_too_high
# fashion mnist CNN with Adam(0.2), accuracy 10%
import tensorflow as tf
from workers.data import fashion_mnist_train

x, y = fashion_mnist_train()
x_train = x[:2000, :, :, None] / 255.0
y_train = y[:2000]
model = tf.keras.Sequential([
    tf.keras.Input((28, 28, 1)),
    tf.keras.layers.Conv2D(32, 3, activation='relu'), tf.keras.layers.MaxPool2D(),
    tf.keras.layers.Flatten(), tf.keras.layers.Dense(64, activation='relu'),
    tf.keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer=tf.keras.optimizers.Adam(0.2), loss='sparse_categorical_crossentropy', metrics=['accuracy'])  # FIX: model.compile(optimizer=tf.keras.optimizers.Adam(0.001), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x_train, y_train, epochs=6, batch_size=64, validation_split=0.2, verbose=0)
