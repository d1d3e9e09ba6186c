# cause: learning_rate_too_low
# CNN accuracy only 50% on fashion-mnist after several epochs
from tensorflow import keras
from tensorflow.keras import layers
from workers.data import fashion_mnist_train

x, y = fashion_mnist_train()
x = x[:2000].reshape(-1, 28, 28, 1).astype('float32') / 255
y = y[:2000]
model = keras.Sequential([keras.Input((28, 28, 1)),
    layers.Conv2D(16, 3, activation='relu'), layers.MaxPooling2D(2),
    layers.Flatten(), layers.Dense(10, activation='softmax')])
model.compile(keras.optimizers.Adam(learning_rate=1e-5), 'sparse_categorical_crossentropy', metrics=['accuracy'])  # FIX: model.compile(keras.optimizers.Adam(learning_rate=1e-3), 'sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(x, y, batch_size=32, epochs=6, validation_split=0.2, verbose=0)
