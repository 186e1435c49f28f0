"""Configuration: loading, validating and the immutable model."""
