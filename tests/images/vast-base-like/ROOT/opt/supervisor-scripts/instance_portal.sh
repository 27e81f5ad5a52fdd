#!/bin/bash
# STAND-IN for the image's Instance Portal (Caddy + portal app): a long-running program.
exec sleep infinity
