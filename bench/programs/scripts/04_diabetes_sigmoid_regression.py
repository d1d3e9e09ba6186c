# cause: output_loss_mismatch
# regression on the diabetes dataset, MSE stays around 28000
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from tensorflow import keras

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=1)

model = keras.Sequential([
    keras.Input(shape=(10,)),
    keras.layers.Dense(64, activation='relu'),
    keras.layers.Dense(64, activation='relu'),
    keras.layers.Dense(1, activation='sigmoid'),  # FIX: keras.layers.Dense(1),
])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss='mse', metrics=['mae'])
history = model.fit(X_train, y_train, epochs=60, batch_size=32, validation_split=0.2, verbose=0)
