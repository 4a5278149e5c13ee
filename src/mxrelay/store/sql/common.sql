-- Named queries of the store, the same on both dialects; store/backend.py reads this file and then
-- <dialect>.sql, which holds the queries that differ. Callers: store/queue/, retention.py and
-- lanes.py. Times are epoch seconds. A parameter written `IN :name` takes a list.
-- Entry states: queued, active (leased), deferred, held, dead, delivered.
-- Recipient states: queued, deferred, held (pending); delivered, failed (done).

-- name: settle
-- Record where an attempt left the entry; only the lease holder may. (On PostgreSQL a batch of
-- settlements is one statement instead, with the same changes: Queue.settle_batch.)
UPDATE queue
SET state = :state, next_attempt_at = :next_attempt_at, attempts = :attempts,
    lease_owner = NULL, lease_expires_at = NULL, hold_kind = :hold_kind,
    hold_reason = :hold_reason, last_error = :last_error, updated_at = :updated_at
WHERE id = :id AND state = 'active' AND lease_owner = :lease_owner

-- name: settle_recipient
-- :attempts is what the attempt adds to the recipient's count (0 or 1).
UPDATE recipients
SET state = :state, attempts = attempts + :attempts, code = :code, enhanced = :enhanced,
    text = :text, updated_at = :updated_at
WHERE message_id = :message_id AND variant = :variant AND address = :address
  AND state IN ('queued', 'deferred', 'held')

-- name: release_lease
-- Give a leased entry back untried (shutdown): due again at once, no attempt counted.
UPDATE queue
SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = :now,
    updated_at = :now
WHERE id = :id AND state = 'active' AND lease_owner = :owner

-- name: requeue_expired
-- Entries whose lease ran out (their replica died): back to the queue, due at once.
UPDATE queue
SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = :now,
    last_error = 'lease expired (the delivering process stopped)', updated_at = :now
WHERE state = 'active' AND lease_expires_at < :now

-- name: requeue_owner
-- The entries a delivery process held when it died: back to the queue, due at once.
UPDATE queue
SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = :now,
    last_error = 'the delivery process stopped', updated_at = :now
WHERE state = 'active' AND lease_owner = :owner

-- name: requeue_all_active
-- Start-up recovery with SQLite (one process per file): every leased entry was this process's.
-- Not used with PostgreSQL, where other replicas may hold live leases (see requeue_expired).
UPDATE queue
SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = :now,
    last_error = 'interrupted by a restart', updated_at = :now
WHERE state = 'active'

-- name: load_entries
-- What the delivery attempts of claimed entries need: the message, the variant and the stored
-- body (none once it is gone).
SELECT q.id, m.received_at, m.mail_from, m.smtputf8, m.received_header, b.encoding, b.raw,
       v.transforms, m.header_from
FROM queue q
JOIN messages m ON m.id = q.message_id
JOIN variants v ON v.message_id = q.message_id AND v.variant = q.variant
LEFT OUTER JOIN message_bodies b ON b.message_id = q.message_id
WHERE q.id IN :ids

-- name: pending_recipients
-- The recipients still to be delivered of these messages, in their order.
SELECT message_id, variant, address FROM recipients
WHERE message_id IN :messages AND state IN ('queued', 'deferred', 'held')
ORDER BY message_id, variant, position

-- name: renew_many
-- Extend the leases still held by :owner; the ids returned are those still held.
UPDATE queue SET lease_expires_at = :expires
WHERE id IN :ids AND state = 'active' AND lease_owner = :owner
RETURNING id

-- name: counts_by_state
SELECT state, COUNT(*) FROM queue GROUP BY state

-- name: oldest_waiting
SELECT MIN(created_at) FROM queue WHERE state IN ('queued', 'deferred', 'active')

-- name: entry_by_key
-- The columns of store/queue/entries.py's ENTRY_COLUMNS, in their order.
SELECT id, message_id, variant, state, created_at, queued_at, next_attempt_at, attempts,
       lease_owner, lease_expires_at, hold_kind, hold_reason, last_error
FROM queue WHERE message_id = :message_id AND variant = :variant

-- name: listed_recipients
-- Every recipient of these messages with its state, in order (the operator's listing).
SELECT message_id, variant, address, state FROM recipients
WHERE message_id IN :messages
ORDER BY message_id, variant, position

-- name: operator_retry
-- Due at once; a dead entry comes back with a fresh lifetime and its failed recipients pending.
UPDATE queue
SET queued_at = CASE WHEN state = 'dead' THEN :now ELSE queued_at END,
    state = 'queued', next_attempt_at = :now, hold_kind = NULL, hold_reason = NULL,
    updated_at = :now
WHERE id = :id AND state IN ('queued', 'deferred', 'held', 'dead')
RETURNING id, message_id, variant

-- name: operator_retry_recipients
UPDATE recipients SET state = 'queued', updated_at = :now
WHERE message_id = :message_id AND variant = :variant AND state IN ('failed', 'deferred', 'held')

-- name: operator_hold
UPDATE queue
SET state = 'held', hold_kind = :hold_kind, hold_reason = :hold_reason, updated_at = :now
WHERE id = :id AND state IN ('queued', 'deferred')
RETURNING id, message_id, variant

-- name: hold_recipients
UPDATE recipients SET state = 'held', updated_at = :now
WHERE message_id = :message_id AND variant = :variant AND state IN ('queued', 'deferred')

-- name: operator_release
UPDATE queue
SET state = 'queued', next_attempt_at = :now, hold_kind = NULL, hold_reason = NULL,
    updated_at = :now
WHERE id = :id AND state = 'held'
RETURNING id, message_id, variant

-- name: release_fault_held
-- The transport works again: release what a configuration fault held (not operator holds).
UPDATE queue
SET state = 'queued', next_attempt_at = :now, hold_kind = NULL, hold_reason = NULL,
    updated_at = :now
WHERE state = 'held' AND hold_kind = 'fault'
RETURNING id, message_id, variant

-- name: release_recipients
UPDATE recipients SET state = 'queued', updated_at = :now
WHERE message_id = :message_id AND variant = :variant AND state = 'held'

-- name: operator_delete
UPDATE queue
SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL,
    last_error = 'deleted by an operator', hold_kind = NULL, hold_reason = NULL, updated_at = :now
WHERE id = :id AND state IN ('queued', 'deferred', 'held', 'active')
RETURNING id, message_id, variant

-- name: delete_recipients
UPDATE recipients
SET state = 'failed', text = 'deleted by an operator', updated_at = :now
WHERE message_id = :message_id AND variant = :variant AND state IN ('queued', 'deferred', 'held')

-- Retention (store/retention.py): bounded batches, oldest first; never a message still queued.

-- name: prunable_bodies
SELECT b.message_id, b.stored_size FROM message_bodies b
WHERE b.received_at < :cutoff
  AND NOT EXISTS (
    SELECT 1 FROM queue q
    WHERE q.message_id = b.message_id AND q.state IN ('queued', 'active', 'deferred', 'held'))
ORDER BY b.received_at
LIMIT :limit

-- name: prune_body
DELETE FROM message_bodies WHERE message_id = :message_id

-- name: mark_body_pruned
UPDATE messages SET body_pruned_at = :now WHERE id = :message_id

-- name: prunable_messages
SELECT m.id FROM messages m
WHERE m.received_at < :cutoff
  AND NOT EXISTS (
    SELECT 1 FROM queue q
    WHERE q.message_id = m.id AND q.state IN ('queued', 'active', 'deferred', 'held'))
ORDER BY m.received_at
LIMIT :limit

-- name: prune_message_variants
DELETE FROM variants WHERE message_id = :message_id

-- name: prune_message_recipients
DELETE FROM recipients WHERE message_id = :message_id

-- name: prune_message_queue
DELETE FROM queue WHERE message_id = :message_id

-- name: prune_message_attempts
DELETE FROM attempts WHERE message_id = :message_id

-- name: prune_message_tags
DELETE FROM message_tags WHERE message_id = :message_id

-- name: prune_message_fields
DELETE FROM message_fields WHERE message_id = :message_id

-- name: prune_message
DELETE FROM messages WHERE id = :message_id

-- name: prune_refusals
DELETE FROM refusals WHERE id IN (
    SELECT id FROM refusals WHERE refused_at < :cutoff ORDER BY refused_at LIMIT :limit)

-- name: prune_audit
DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < :cutoff ORDER BY at LIMIT :limit)

-- name: body_totals
SELECT COALESCE(SUM(stored_size), 0), MIN(received_at) FROM message_bodies

-- Pacing lanes shared by the replicas of one queue (store/lanes.py). The app-wide row is lane ''.

-- name: lanes_lock
-- Lock the app-wide row, then the lane's (each created when missing), and read their states:
-- every change to the lanes begins here, so replicas take turns, always in this order.
INSERT INTO pacing_lanes (lane, state, updated_at) VALUES ('', '', :now), (:lane, '', :now)
ON CONFLICT (lane) DO UPDATE SET updated_at = excluded.updated_at
RETURNING lane, state

-- name: lane_save
UPDATE pacing_lanes SET state = :state WHERE lane = :lane

-- name: lane_promise
SELECT slot FROM pacing_promises WHERE lane = :lane AND message = :message

-- name: lane_promise_set
INSERT INTO pacing_promises (lane, message, slot) VALUES (:lane, :message, :slot)
ON CONFLICT (lane, message) DO UPDATE SET slot = excluded.slot

-- name: lane_promise_drop
DELETE FROM pacing_promises WHERE lane = :lane AND message = :message

-- name: lane_promises_void
-- A Retry-After closed the lane: the slots promised before it are void.
DELETE FROM pacing_promises WHERE lane = :lane

-- name: lanes_forget
DELETE FROM pacing_lanes WHERE lane <> '' AND updated_at < :before

-- name: lane_promises_forget
DELETE FROM pacing_promises WHERE slot < :before

-- name: lanes_all
SELECT lane, state FROM pacing_lanes ORDER BY lane
