# cause: output_loss_mismatch
# Fashion-MNIST MLP, one-hot labels, loss does not go down
import numpy as np
from tensorflow import keras
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Dense, Activation, Flatten
from tensorflow.keras.utils import to_categorical
from workers.data import fashion_mnist_train  # stands in for keras.datasets.fashion_mnist

images, labels = fashion_mnist_train()
x_train, y_train = images[:3000] / 255.0, to_categorical(labels[:3000], 10)
x_test, y_test = images[3000:3600] / 255.0, to_categorical(labels[3000:3600], 10)

model = Sequential()
model.add(keras.Input(shape=(28, 28)))
model.add(Flatten())
model.add(Dense(128))
model.add(Activation('relu'))
model.add(Dense(10))
model.add(Activation('relu'))  # FIX: model.add(Activation('softmax'))
model.compile(loss='categorical_crossentropy', optimizer='adam', metrics=['accuracy'])
history = model.fit(x_train, y_train, batch_size=64, epochs=10, validation_data=(x_test, y_test), verbose=0)
