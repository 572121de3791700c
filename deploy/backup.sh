#!/bin/sh
# Back up Sandbar into SANDBAR_BACKUP_DIR/<UTC time>/, keeping the last
# SANDBAR_BACKUP_KEEP (default 14) backups:
#   sandbar.pgdump or sandbar.sqlite3  the database (pg_dump, or SQLite's online backup)
#   data.tar.gz                        SANDBAR_DATA_DIR without the database, static
#                                      files and engine state: the secret key and the
#                                      first admin's password file
# Restore: docs/deploy.md "Backups". Safe while Sandbar runs.
set -eu
backups="${SANDBAR_BACKUP_DIR:?set SANDBAR_BACKUP_DIR}"
data="${SANDBAR_DATA_DIR:?set SANDBAR_DATA_DIR}"
keep="${SANDBAR_BACKUP_KEEP:-14}"
python="${SANDBAR_PYTHON:-python3}"
umask 077
target="$backups/$(date -u +%Y%m%dT%H%M%S.%NZ)"
mkdir -p "$target"
case "${DATABASE_URL:-}" in
  postgres://* | postgresql://*)
    pg_dump --format=custom --file="$target/sandbar.pgdump" "$DATABASE_URL"
    ;;
  "" | sqlite://*)
    database="${DATABASE_URL:-}"
    database="${database#sqlite://}"
    [ -n "$database" ] || database="$data/sandbar.sqlite3"
    "$python" -c 'import sqlite3, sys
source = sqlite3.connect(sys.argv[1])
with sqlite3.connect(sys.argv[2]) as copy:
    source.backup(copy)' "$database" "$target/sandbar.sqlite3"
    ;;
  *)
    echo "backup.sh: back up the database at DATABASE_URL with its own tools" >&2
    exit 1
    ;;
esac
tar -C "$data" -czf "$target/data.tar.gz" \
  --exclude=./static --exclude=./engine --exclude='./sandbar.sqlite3*' .
# Oldest first (the names are times); all but the last $keep go.
ls -1d "$backups"/*/ | sort | head -n "-$keep" | xargs -r rm -rf
echo "backup.sh: $target"
