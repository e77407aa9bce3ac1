//! The NDJSON event format of replay files and the ingest API.
