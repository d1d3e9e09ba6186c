"""A benchmark of user-style Keras programs, each with one bug and its fixed twin."""
