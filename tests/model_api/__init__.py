"""Tests of the model_api role and server: the torch build the role picks for the driver (run by
Ansible), and the server itself (real model, real uvicorn on loopback)."""
