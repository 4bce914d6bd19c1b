#!/bin/sh
echo "$GREETING!"
cat /app/build-info
