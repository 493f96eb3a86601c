#!/bin/sh
# Checks the host can run the stack.
command -v systemd-nspawn >/dev/null
