#!/bin/sh
# Exec task that sleeps (1000 s by default; $1 may be a unique length such as
# 1000.123456 that serves as a pgrep marker).
exec sleep "${1:-1000}"
