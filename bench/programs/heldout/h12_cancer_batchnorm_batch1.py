# cause: batch_size_too_small
# breast cancer MLP with BatchNorm, batch_size=1 ("online learning"); loss stays at 0.69
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
import keras
from keras import layers

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=2, stratify=y)
sc = StandardScaler()
X_train = sc.fit_transform(X_train)
X_test = sc.transform(X_test)

model = keras.Sequential([
    keras.Input(shape=(30,)),
    layers.Dense(32), layers.BatchNormalization(), layers.Activation("relu"),
    layers.Dense(16), layers.BatchNormalization(), layers.Activation("relu"),
    layers.Dense(1, activation="sigmoid"),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", metrics=["accuracy"])
BATCH = 1  # FIX: BATCH = 32
model.fit(X_train, y_train, batch_size=BATCH, epochs=8, validation_data=(X_test, y_test), verbose=0)
