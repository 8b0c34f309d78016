package deploy

import _ "embed"

// ClickHouseReaderUsers is clickhouse/users.d/hissuno-reader.xml, the
// audit readers' read-only ClickHouse user, as docker-compose.yml mounts
// it; `hissuno dev` gives its own ClickHouse the same user.
//
//go:embed clickhouse/users.d/hissuno-reader.xml
var ClickHouseReaderUsers []byte

// The read-only user ClickHouseReaderUsers defines: its name, the
// environment variable its password is read from, and the one database it
// may read, the audit's (CLICKHOUSE_DB in docker-compose.yml).
const (
	ClickHouseReader            = "hissuno_reader"
	ClickHouseReaderPasswordVar = "HISSUNO_CLICKHOUSE_READER_PASSWORD"
	ClickHouseDatabase          = "hissuno"
)
