#!/bin/sh
# The image's entrypoint (after tini): make the volume writable for the unprivileged user, then
# run the command as that user.
#
# Fly mounts a volume owned by root, over the image's /data, so the ownership the Dockerfile
# gave /data is hidden on the machine. Started as root, this script creates PRIA_HOME and
# HF_HOME on the volume, hands them to uid 10001 (the Dockerfile's `pria`) and drops to that
# user; started as anyone else (docker run --user, a laptop), it only runs the command.
set -eu
uid=10001
if [ "$(id -u)" = 0 ]; then
    for dir in "${PRIA_HOME:-/data/pria}" "${HF_HOME:-/data/hf}"; do
        mkdir -p "$dir"
        # Only what is not yet the user's: a volume holding 15 GB of weights is not walked
        # again every night.
        find "$dir" ! -user "$uid" -exec chown "$uid:$uid" {} +
    done
    exec setpriv --reuid="$uid" --regid="$uid" --clear-groups -- "$@"
fi
exec "$@"
