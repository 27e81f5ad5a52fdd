#!/bin/bash
# Boot step: prepare the environment the image's programs read.
grep -q '^VAST_BOOT_PREPARED=' /etc/environment 2>/dev/null || echo 'VAST_BOOT_PREPARED=1' >> /etc/environment
echo "boot: environment prepared at $(date -u +%FT%TZ)"
