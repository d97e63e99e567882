-- The inbox's counts without a join per read mark (issue #19). A read mark
-- now carries the queue and status its ticket had when the agent opened it,
-- and lives only while that is still true: any change to the ticket (its
-- updated_at, queue or status) deletes the ticket's marks, here in the
-- database, whoever writes. So "seen as it is" is "has a mark", and the
-- unread count per queue is read from the agent's marks alone. (A mark is
-- written under a share lock on its ticket, storage::console::mark_read,
-- so that it cannot slip in beside a concurrent change.)

-- Marks already stale are unread anyway: dropped rather than copied.
DELETE FROM console_reads r WHERE NOT EXISTS (
    SELECT 1 FROM tickets t WHERE t.id = r.ticket_id AND t.updated_at <= r.seen_at);
ALTER TABLE console_reads
    ADD COLUMN queue TEXT NOT NULL DEFAULT '',
    ADD COLUMN status TEXT NOT NULL DEFAULT '';
UPDATE console_reads r SET queue = t.queue, status = t.status
    FROM tickets t WHERE t.id = r.ticket_id;

CREATE INDEX console_reads_by_ticket ON console_reads (ticket_id);
CREATE INDEX console_reads_counted ON console_reads (agent, status, queue);

CREATE FUNCTION tickets_changed_unread() RETURNS trigger AS $$
BEGIN
    DELETE FROM console_reads WHERE ticket_id = NEW.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tickets_changed_unread AFTER UPDATE OF updated_at, queue, status ON tickets
    FOR EACH ROW WHEN (OLD.updated_at IS DISTINCT FROM NEW.updated_at
                       OR OLD.queue IS DISTINCT FROM NEW.queue
                       OR OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION tickets_changed_unread();

-- The inbox's order as a column: the first-response due time while a
-- ticket has had no first response, else after all. Stored, so that its
-- indexes can be scanned without the table (PostgreSQL reads the table for
-- an index on an expression): a page deep in a long backlog is then a walk
-- down an index alone.
-- Written by no one: INSERT statements leave it out.
ALTER TABLE tickets ADD COLUMN inbox_due BIGINT GENERATED ALWAYS AS
    (COALESCE(CASE WHEN first_response_at IS NULL THEN first_response_due END, 9223372036854775807)) STORED;

-- The inbox's lists, each in that order (storage::console::inbox_index),
-- now on the column rather than the expression.
DROP INDEX tickets_inbox;
DROP INDEX tickets_inbox_by_queue;
DROP INDEX tickets_by_status_due;
CREATE INDEX tickets_inbox ON tickets (inbox_due, id) WHERE status IN ('new', 'open', 'pending');
CREATE INDEX tickets_inbox_by_queue ON tickets (queue, inbox_due, id) WHERE status IN ('new', 'open', 'pending');
CREATE INDEX tickets_inbox_by_assignee ON tickets (assignee, inbox_due, id) WHERE status IN ('new', 'open', 'pending');
CREATE INDEX tickets_by_status_due ON tickets (status, inbox_due, id);

-- The queues' counts (how many being worked, how many overdue) read from
-- this index alone.
CREATE INDEX tickets_inbox_counts ON tickets (queue, status, inbox_due) WHERE status IN ('new', 'open', 'pending');
