// Package audit is the audit's side in ClickHouse: the tables and their
// migrations, the auditor's inserts, and the reads of `hissuno audit` and
// of the admin console.
//
// Every statement runs on ClickHouse 18.16 as on current releases (no
// DateTime64, TTL, LowCardinality, Map or JSON type, no WITH FILL, no
// window function), binds every value it is given instead of splicing it
// into the SQL, and reads without FINAL: the auditor stores each row once
// (Stored), so counts are plain; listings also drop any copy they meet.
// Retention alone asks the server's version, and sets a TTL only where
// there is one (19.6 and later), dropping whole month partitions
// elsewhere. No secret key and
// no raw token is ever stored: tokens appear as fingerprints.
package audit
