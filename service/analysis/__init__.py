"""The analysis core: pure functions over numpy, no web framework and no TensorFlow."""
