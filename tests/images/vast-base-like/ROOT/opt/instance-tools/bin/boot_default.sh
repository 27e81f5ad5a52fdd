#!/bin/bash
# The image's default boot (as in vast-ai/base-image): sources each numbered step in order, in
# one shell, so a step can use what an earlier one set (95 waits on the pid that 65 started).
umask 002
for script in /etc/vast_boot.d/*.sh; do
    [[ -f "$script" ]] && [[ -r "$script" ]] && . "$script"
done
