#!/bin/bash
# The image's entrypoint (as in vast-ai/base-image): runs the default boot script.
exec /opt/instance-tools/bin/boot_default.sh "$@"
