#!/bin/bash
# STAND-IN for the image's Jupyter: like the image's scripts, it needs what its boot step
# prepared (10-prep-env.sh writes /etc/environment's marker) and exits at once without it.
. /etc/environment 2>/dev/null || true
if [ -z "${VAST_BOOT_PREPARED:-}" ]; then
    echo "Refusing to start ${PROC_NAME}: the image's boot did not prepare the environment"
    exit 1
fi
exec python3 -m http.server 18080 --bind 127.0.0.1
