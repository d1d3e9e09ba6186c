# cause: unnormalized_inputs
# simple dense network on fashion mnist, accuracy only 40% after 10 epochs
from tensorflow import keras
from workers.data import fashion_mnist_train

images, labels = fashion_mnist_train()
X = images[:3000].reshape(-1, 784).astype('float32')
X = X  # FIX: X = X / 255.0
y = labels[:3000]
model = keras.models.Sequential()
model.add(keras.layers.Input(shape=(784,)))
model.add(keras.layers.Dense(100, activation='sigmoid'))
model.add(keras.layers.Dense(10, activation='softmax'))
model.compile(optimizer=keras.optimizers.SGD(0.05), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X, y, validation_split=0.2, epochs=10, batch_size=32, verbose=0)
