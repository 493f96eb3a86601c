#!/bin/sh
# Runs before the stack starts.
echo "deploying $VOLT_STACK"
