#!/bin/sh
# Make PostGIS available to the local PostgreSQL 15 (Debian packages), installing it only when
# it is missing. Idempotent and quiet: prints nothing when PostGIS is already there. The
# migration 0002_locations then runs CREATE EXTENSION IF NOT EXISTS postgis / btree_gist.
set -eu

if [ -f /usr/share/postgresql/15/extension/postgis.control ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure_postgis: PostGIS is missing and installing it needs root" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq postgresql-15-postgis-3 >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql-15-postgis-3 >/dev/null
fi
test -f /usr/share/postgresql/15/extension/postgis.control
