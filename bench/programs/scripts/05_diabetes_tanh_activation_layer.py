# cause: output_loss_mismatch
# "my regression model predicts 1.0 for everything"
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from tensorflow.keras import Sequential, Input
from tensorflow.keras.layers import Dense, Activation
from tensorflow.keras.optimizers import Adam

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=3)

model = Sequential([Input(shape=(10,)), Dense(32), Activation('relu'), Dense(1),
                    Activation('tanh')])  # FIX: Activation('linear')])
model.compile(optimizer=Adam(learning_rate=0.01), loss='mean_squared_error')
history = model.fit(X_train, y_train, epochs=60, batch_size=16, validation_data=(X_test, y_test), verbose=0)
