"""Tuning a model's deletion policy on the model itself (POST /models/{id}/tune)."""
