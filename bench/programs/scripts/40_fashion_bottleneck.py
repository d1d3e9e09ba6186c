# cause: insufficient_capacity
# autoencoder-style bottleneck in a fashion classifier: accuracy stuck at 55%
from tensorflow import keras
from workers.data import fashion_mnist_train

images, labels = fashion_mnist_train()
X = images[:3000].reshape(-1, 784) / 255.0
y = labels[:3000]
model = keras.Sequential([keras.Input((784,)),
    keras.layers.Dense(128, activation='relu'),
    keras.layers.Dense(2, activation='relu'),  # FIX: keras.layers.Dense(64, activation='relu'),
    keras.layers.Dense(10, activation='softmax')])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X, y, epochs=10, batch_size=32, validation_split=0.2, verbose=0)
