#!/bin/sh
# Exec task that burns CPU forever: must be killed at its deadline.
while :; do :; done
