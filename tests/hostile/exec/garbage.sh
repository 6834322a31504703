#!/bin/sh
# Exec task whose stdout is not JSON: "malformed result: ...".
echo 'this is not json {'
