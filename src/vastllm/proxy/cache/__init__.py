"""The response cache: ``store`` (key from the normalized request, values are final messages)
over ``redis`` (a small pipelined RESP2 client)."""
