#!/bin/sh
# Exec task that checks for a file an earlier job may have left in its
# working directory, then leaves one itself.
if [ -e leftover.txt ]; then found=true; else found=false; fi
echo 'left by an earlier job' > leftover.txt 2>/dev/null
printf '{"found":%s}\n' "$found"
