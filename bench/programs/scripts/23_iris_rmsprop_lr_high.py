# cause: learning_rate_too_high
# iris, RMSprop lr=1, loss jumps around
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from keras import Sequential, Input
from keras.layers import Dense
from keras.optimizers import RMSprop

X, y = load_iris(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=1, stratify=y)
model = Sequential([Input((4,)), Dense(16, activation='relu'), Dense(16, activation='relu'), Dense(3, activation='softmax')])
model.compile(optimizer=RMSprop(learning_rate=1.0), loss='sparse_categorical_crossentropy', metrics=['accuracy'])  # FIX: model.compile(optimizer=RMSprop(learning_rate=0.01), loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=50, batch_size=8, validation_data=(X_test, y_test), verbose=0)
