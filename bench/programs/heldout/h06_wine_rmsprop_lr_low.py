# cause: learning_rate_too_low
# wine classifier barely improves over 40 epochs
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler
from sklearn.utils import shuffle
import keras

X, y = load_wine(return_X_y=True)
X, y = shuffle(X, y, random_state=1)
X = StandardScaler().fit_transform(X)

model = keras.Sequential([
    keras.layers.Input((13,)),
    keras.layers.Dense(16, activation="tanh"),
    keras.layers.Dense(3, activation="softmax"),
])
model.compile(
    optimizer=keras.optimizers.RMSprop(learning_rate=1e-5),  # FIX: optimizer=keras.optimizers.RMSprop(learning_rate=1e-2),
    loss="sparse_categorical_crossentropy",
    metrics=["accuracy"],
)
hist = model.fit(X, y, epochs=40, batch_size=16, validation_split=0.25, verbose=0)
