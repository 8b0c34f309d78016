-- Every decision a verifier made, one row per decision_id.
-- Valid on ClickHouse 18.16 and current releases: no DateTime64, TTL,
-- LowCardinality, Map or JSON types.
-- A redelivered batch inserts identical rows (same decision_id, same time);
-- ReplacingMergeTree merges them away and every query reads with FINAL, so
-- no query ever shows a decision twice.
CREATE TABLE IF NOT EXISTS hissuno_decisions
(
    decision_id       String,
    attempt_id        String,
    time              DateTime,
    time_us           UInt32,
    received_at       DateTime,
    project_id        String,
    decision          String,
    reason            String,
    message           String,
    session           String,
    user_id           String,
    user_verified     UInt8,
    user_metadata     String,
    claimed_user_id   String,
    origin            String,
    token_fingerprint String,
    key_version       UInt32,
    skew_seconds      Int64,
    verifier          String,
    ingress           String,
    latency_us        UInt64,
    client_ip         String,
    user_agent        String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (project_id, time, decision_id)
