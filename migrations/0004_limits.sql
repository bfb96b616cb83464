-- The per-sender message limit counts an agent's messages of the last minute.
CREATE INDEX messages_by_sender ON messages (from_agent, created_at);
