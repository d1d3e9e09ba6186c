# cause: learning_rate_too_high
# breast cancer MLP, SGD with Nesterov momentum; loss jumps around / nan
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
import keras
from keras import layers

data = load_breast_cancer()
X_train, X_val, y_train, y_val = train_test_split(data.data, data.target, test_size=0.3, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)

inputs = keras.Input(shape=(30,))
hidden = layers.Dense(64, activation="relu")(inputs)
hidden = layers.Dense(64, activation="relu")(hidden)
out = layers.Dense(1, activation="sigmoid")(hidden)
model = keras.Model(inputs=inputs, outputs=out)
opt = keras.optimizers.SGD(learning_rate=3.0, momentum=0.9, nesterov=True)  # FIX: opt = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)
model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
model.fit(X_train, y_train, validation_data=(X_val, y_val), epochs=30, batch_size=16, verbose=0)
