# cause: output_loss_mismatch
# Functional model on digits: "loss decreases very slowly and accuracy plateaus"
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import keras
from keras import layers

X, y = load_digits(return_X_y=True)
X = X.astype("float32") / 16.0
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=7)

inputs = keras.Input(shape=(64,))
h = layers.Dense(32, activation="relu")(inputs)
outputs = layers.Dense(10, activation="softmax")(h)
model = keras.Model(inputs, outputs, name="digits_mlp")
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=0.05),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # FIX: loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
    metrics=["accuracy"],
)
model.fit(X_tr, y_tr, batch_size=64, epochs=8, validation_data=(X_te, y_te), verbose=0)
