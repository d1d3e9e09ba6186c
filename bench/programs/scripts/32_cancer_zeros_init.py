# cause: poor_weight_initialization
# kernel_initializer='zeros' on a breast cancer MLP, accuracy 63%
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from keras import Sequential, Input
from keras.layers import Dense

X, y = load_breast_cancer(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=5)
sc = StandardScaler(); X_tr = sc.fit_transform(X_tr); X_te = sc.transform(X_te)
model = Sequential([Input((30,)),
                    Dense(32, activation='relu', kernel_initializer='zeros'),  # FIX: Dense(32, activation='relu'),
                    Dense(32, activation='relu', kernel_initializer='zeros'),  # FIX: Dense(32, activation='relu'),
                    Dense(1, activation='sigmoid', kernel_initializer='zeros')])  # FIX: Dense(1, activation='sigmoid')])
model.compile(optimizer='sgd', loss='binary_crossentropy', metrics=['accuracy'])
history = model.fit(X_tr, y_tr, epochs=30, batch_size=32, validation_data=(X_te, y_te), verbose=0)
