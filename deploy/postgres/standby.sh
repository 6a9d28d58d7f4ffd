#!/bin/sh
# The standby's entrypoint (run as the `postgres` user): the first time, a base backup of the
# primary with a replication slot and the recovery settings (-R, application_name=standby, the
# name the primary waits for); then PostgreSQL as a hot standby.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h postgres-primary -U replicator -d postgres; do sleep 1; done
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup \
    -d "host=postgres-primary user=replicator application_name=standby" \
    -D "$PGDATA" -R -X stream -C -S standby --checkpoint=fast
  # The backup copied the primary's synchronous_standby_names: once promoted, this server runs
  # alone and must not wait for a standby of its own (later lines of the file win).
  echo "synchronous_standby_names = ''" >> "$PGDATA/postgresql.auto.conf"
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c wal_retrieve_retry_interval=1s
