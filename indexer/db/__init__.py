"""The database side of the indexer: embedded server, connections, migrations."""
