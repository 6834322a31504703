#!/bin/sh
# Exec task that reports the names of its environment variables.
names=$(env | cut -d= -f1 | tr '\n' ' ')
printf '{"env":"%s"}\n' "$names"
