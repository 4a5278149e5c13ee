-- Named queries of the store that differ on SQLite; the others are in common.sql.
-- Every name here exists in postgresql.sql too.

-- name: claim
-- Lease up to :limit due entries to :owner, oldest due first, in one statement (the caller's
-- transaction is BEGIN IMMEDIATE, so no other writer runs between the choice and the update).
UPDATE queue
SET state = 'active', lease_owner = :owner, lease_expires_at = :expires, updated_at = :now
WHERE id IN (
    SELECT id FROM queue
    WHERE state IN ('queued', 'deferred') AND next_attempt_at <= :now
    ORDER BY next_attempt_at
    LIMIT :limit
)
RETURNING id, message_id, variant, state, created_at, queued_at, next_attempt_at, attempts,
          lease_owner, lease_expires_at, hold_kind, hold_reason, last_error

-- name: search_clear_body
-- The full-text row of a message (FTS5: found through its indexed message_id column).
UPDATE message_search SET body = '' WHERE message_search MATCH :match

-- name: search_delete
DELETE FROM message_search WHERE message_search MATCH :match

-- name: lanes_lock_promise
-- SQLite has no INSERT inside WITH: the lock alone (store/lanes.py then reads the promise with
-- lane_promise; the transaction is BEGIN IMMEDIATE, so nothing changes in between).
INSERT INTO pacing_lanes (lane, state, updated_at) VALUES ('', '', :now), (:lane, '', :now)
ON CONFLICT (lane) DO UPDATE SET updated_at = excluded.updated_at
RETURNING lane, state, NULL AS slot
