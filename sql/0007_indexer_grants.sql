-- The daemon checks, before it starts, that the schema is not behind: it reads the
-- migrations record. Without this grant a least-privilege login could not start it.
GRANT SELECT ON schema_migrations TO amoca_indexer, amoca_readonly;
