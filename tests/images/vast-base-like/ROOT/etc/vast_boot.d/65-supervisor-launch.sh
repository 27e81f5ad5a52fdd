#!/bin/bash
# Indicator for supervisor scripts to prevent launch during provisioning if necessary
touch /.provisioning

# Now we run supervisord - Put it in the background so provisioning can be monitored
supervisord \
    -n \
    -u root \
    -c /etc/supervisor/supervisord.conf &
supervisord_pid=$!
