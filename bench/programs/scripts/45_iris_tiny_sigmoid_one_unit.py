# cause: output_loss_mismatch
# 3-class iris with Dense(1, sigmoid) and binary_crossentropy: accuracy 33%
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from tensorflow import keras

X, y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation='relu'),
                          keras.layers.Dense(1, activation='sigmoid')])  # FIX: keras.layers.Dense(3, activation='softmax')])
model.compile(optimizer=keras.optimizers.Adam(0.01), loss='binary_crossentropy', metrics=['accuracy'])  # FIX: model.compile(optimizer=keras.optimizers.Adam(0.01), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=50, batch_size=8, validation_data=(X_test, y_test), verbose=0)
