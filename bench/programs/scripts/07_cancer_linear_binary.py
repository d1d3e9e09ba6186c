# cause: output_loss_mismatch
# binary_crossentropy with a linear last layer: loss 7.x
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import MinMaxScaler
from tensorflow import keras

X, y = load_breast_cancer(return_X_y=True)
X = MinMaxScaler().fit_transform(X)
model = keras.Sequential()
model.add(keras.layers.Input(shape=(X.shape[1],)))
model.add(keras.layers.Dense(32, activation='relu'))
model.add(keras.layers.Dense(1))  # FIX: model.add(keras.layers.Dense(1, activation='sigmoid'))
model.compile(loss='binary_crossentropy', optimizer='sgd', metrics=['accuracy'])
history = model.fit(X, y, epochs=40, batch_size=32, validation_split=0.2, shuffle=True, verbose=0)
