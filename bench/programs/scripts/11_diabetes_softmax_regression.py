# cause: output_loss_mismatch
# predicting disease progression, val_loss never changes
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from keras.models import Sequential
from keras.layers import Dense, Input, Softmax

X, y = load_diabetes(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=11)
model = Sequential()
model.add(Input(shape=(10,)))
model.add(Dense(32, activation='relu'))
model.add(Dense(1))
model.add(Softmax())  # FIX: pass
model.compile(optimizer='rmsprop', loss='mse')
history = model.fit(X_tr, y_tr, epochs=60, batch_size=20, validation_data=(X_te, y_te), verbose=0)
