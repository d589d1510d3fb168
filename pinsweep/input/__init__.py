"""The input path: datasets, the pipelines that turn samples into batches, and the loader that serves them."""
