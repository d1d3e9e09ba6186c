# cause: poor_weight_initialization
# weights initialised with stddev 5 "to break symmetry", wine classifier
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
import tensorflow as tf

X, y = load_wine(return_X_y=True)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=2, stratify=y)
init = tf.keras.initializers.RandomNormal(stddev=5.0)  # FIX: init = tf.keras.initializers.GlorotUniform()
model = tf.keras.Sequential([tf.keras.Input((13,)),
    tf.keras.layers.Dense(64, activation='sigmoid', kernel_initializer=init),
    tf.keras.layers.Dense(64, activation='sigmoid', kernel_initializer=init),
    tf.keras.layers.Dense(3, activation='softmax', kernel_initializer=init)])
model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
history = model.fit(X_train, y_train, epochs=40, batch_size=16, validation_data=(X_test, y_test), verbose=0)
