-- Every admin change: who, when, what, key versions and fingerprints.
-- Never a secret key: keys exist only sealed in the KV bucket.
CREATE TABLE IF NOT EXISTS hissuno_admin_events
(
    event_id             String,
    command_id           String,
    kind                 String,
    actor                String,
    time                 DateTime,
    time_us              UInt32,
    project_id           String,
    name                 String,
    require_token        UInt8,
    origins              Array(String),
    key_version          UInt32,
    previous_key_version UInt32,
    key_fingerprint      String,
    grace_seconds        Int64,
    grace_until          DateTime,
    user_id              String,
    revoked_before       DateTime,
    revision             UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (project_id, time, event_id)
