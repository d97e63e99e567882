-- Derived rows the database keeps itself, whoever writes: every ticket has
-- its 'created' event, and every message that belongs to a ticket is in the
-- ticket's conversation. (The bot also saves a round trip per message.)

CREATE FUNCTION tickets_created_event() RETURNS trigger AS $$
BEGIN
    INSERT INTO ticket_events (ticket_id, at, actor, kind, to_value, body)
    VALUES (NEW.id, NEW.created_at, 'bot', 'created', NEW.status, NEW.note);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tickets_created_event AFTER INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION tickets_created_event();

CREATE FUNCTION messages_join_ticket() RETURNS trigger AS $$
BEGIN
    INSERT INTO ticket_messages (ticket_id, direction, message_id, body, at)
    VALUES (NEW.ticket_id, 'in', NEW.id, NEW.text, NEW.received_at);
    UPDATE tickets SET updated_at = NEW.received_at
    WHERE id = NEW.ticket_id AND updated_at < NEW.received_at;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER messages_join_ticket AFTER INSERT ON messages
    FOR EACH ROW WHEN (NEW.ticket_id IS NOT NULL) EXECUTE FUNCTION messages_join_ticket();
