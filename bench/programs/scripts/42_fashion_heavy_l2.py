# cause: excessive_regularization
# added L2 to fix overfitting, now the model does not learn at all
from tensorflow import keras
from tensorflow.keras import layers, regularizers
from workers.data import fashion_mnist_train

images, labels = fashion_mnist_train()
X = images[:3000].reshape(-1, 784) / 255.0
y = labels[:3000]
reg = regularizers.l2(0.5)  # FIX: reg = regularizers.l2(1e-4)
model = keras.Sequential([keras.Input((784,)),
    layers.Dense(256, activation='relu', kernel_regularizer=reg),
    layers.Dense(128, activation='relu', kernel_regularizer=reg),
    layers.Dense(10, activation='softmax', kernel_regularizer=reg)])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X, y, epochs=10, batch_size=64, validation_split=0.2, verbose=0)
