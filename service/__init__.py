"""lossdoctor's API service: contract, analysis core, job store. Never imports TensorFlow."""
