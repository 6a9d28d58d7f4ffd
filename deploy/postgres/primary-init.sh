#!/bin/sh
# Run once by the postgres image when it initialises the primary's data folder
# (/docker-entrypoint-initdb.d): the role the standby replicates as, and synchronous replication
# to the server named `standby`.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v password="$REPLICATION_PASSWORD" <<'SQL'
-- Committed locally: there is no standby yet to wait for.
SET synchronous_commit = local;
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
-- Takes effect when the image restarts the server after initialisation. A commit returns once
-- the standby has written it (synchronous_commit = on, the default).
ALTER SYSTEM SET synchronous_standby_names = 'standby';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
