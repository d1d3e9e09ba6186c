# cause: unnormalized_inputs
# wine dataset neural network only 40% accuracy
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
import tensorflow as tf

data = load_wine()
X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=0, stratify=data.target)
mean, std = X_train.mean(axis=0), X_train.std(axis=0)
# X_train = (X_train - mean) / std   (commented out while debugging)
X_train = X_train  # FIX: X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
model = tf.keras.Sequential([tf.keras.Input((13,)), tf.keras.layers.Dense(16, activation='relu'),
                             tf.keras.layers.Dense(3, activation='softmax')])
model.compile(optimizer='sgd', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=40, batch_size=16, validation_data=(X_test, y_test), verbose=0)
