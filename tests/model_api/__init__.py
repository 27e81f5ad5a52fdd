"""Tests of the model API server (real model, real uvicorn on loopback)."""
