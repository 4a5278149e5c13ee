-- Named queries of the store that differ on PostgreSQL; the others are in common.sql.
-- Every name here exists in sqlite.sql too.

-- name: claim
-- Lease up to :limit due entries to :owner, oldest due first, in one statement; rows another
-- replica is claiming at the same moment are skipped, not waited for.
UPDATE queue
SET state = 'active', lease_owner = :owner, lease_expires_at = :expires, updated_at = :now
WHERE id IN (
    SELECT id FROM queue
    WHERE state IN ('queued', 'deferred') AND next_attempt_at <= :now
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
RETURNING id, message_id, variant, state, created_at, queued_at, next_attempt_at, attempts,
          lease_owner, lease_expires_at, hold_kind, hold_reason, last_error

-- name: search_clear_body
UPDATE message_search SET body = '' WHERE message_id = :message_id

-- name: search_delete
DELETE FROM message_search WHERE message_id = :message_id

-- name: lanes_lock_promise
-- lanes_lock and lane_promise in one round trip (rows with a lane: states; without: the slot).
-- The promise is read as of the statement's start: only the message's own deliveries change it.
WITH locked AS (
    INSERT INTO pacing_lanes (lane, state, updated_at) VALUES ('', '', :now), (:lane, '', :now)
    ON CONFLICT (lane) DO UPDATE SET updated_at = excluded.updated_at
    RETURNING lane, state
)
SELECT lane, state, CAST(NULL AS DOUBLE PRECISION) AS slot FROM locked
UNION ALL
SELECT NULL, NULL, slot FROM pacing_promises WHERE lane = :lane AND message = :message
