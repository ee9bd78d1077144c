"""The model families as the API publishes them (``GET /api/v1/families``)."""
