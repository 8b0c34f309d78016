-- Requests an ingress refused over a rate limit (429) or a connection cap,
-- rolled up: one row per (minute, ingress, project or 'unknown', client
-- address, reason), at most a bounded number a minute per ingress, the rest
-- in one overflow row per reason (overflow = 1, no project, no address), so
-- that a minute's counts add up to the requests refused.
-- Valid on ClickHouse 18.16 and current releases: no DateTime64, TTL,
-- LowCardinality, Map or JSON types.
-- A redelivered or republished count inserts an identical row (same
-- rollup_id, same time); ReplacingMergeTree merges them away and every
-- query reads with FINAL, so no count is ever added twice.
CREATE TABLE IF NOT EXISTS hissuno_throttled
(
    rollup_id  String,
    time       DateTime,
    ingress    String,
    project_id String,
    client_ip  String,
    reason     String,
    count      UInt64,
    overflow   UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (project_id, time, rollup_id)
