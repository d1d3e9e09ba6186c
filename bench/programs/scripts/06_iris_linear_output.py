# cause: output_loss_mismatch
# iris with keras, loss is nan/huge and accuracy random
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
import tensorflow as tf

iris = load_iris()
X = StandardScaler().fit_transform(iris.data)
X_train, X_val, y_train, y_val = train_test_split(X, iris.target, test_size=0.3, random_state=7, stratify=iris.target)

model = tf.keras.models.Sequential([
    tf.keras.layers.Input((4,)),
    tf.keras.layers.Dense(10, activation='relu'),
    tf.keras.layers.Dense(10, activation='relu'),
    tf.keras.layers.Dense(3)  # FIX: tf.keras.layers.Dense(3, activation='softmax')
])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=60, batch_size=8, validation_data=(X_val, y_val), verbose=0)
