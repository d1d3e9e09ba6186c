# cause: output_loss_mismatch
# wine classifier, accuracy looks good in training but predictions are wrong
import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from keras import Sequential, Input
from keras.layers import Dense
from keras.utils import to_categorical

X, y = load_wine(return_X_y=True)
X = StandardScaler().fit_transform(X)
Y = to_categorical(y)
X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.3, random_state=5)
model = Sequential([Input((13,)), Dense(8, activation='relu'), Dense(3, activation='softmax')])
model.compile(optimizer='sgd', loss='binary_crossentropy', metrics=['accuracy'])  # FIX: model.compile(optimizer='sgd', loss='categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, Y_train, epochs=30, batch_size=16, validation_data=(X_test, Y_test), verbose=0)
