-- Dashboard logins (src/web/auth/). Only the SHA-256 of the session id (the cookie's value) is
-- kept, so a copy of the run log cannot be used to log in. The user's role is not stored: it is
-- looked up in cxflow.yaml at each request, so a user removed there loses access at once. Times
-- are RFC 3339 UTC with milliseconds, so they compare as text.
CREATE TABLE web_sessions (
    id_hash    TEXT PRIMARY KEY,            -- hex SHA-256 of the session id
    user_name  TEXT NOT NULL,
    csrf_token TEXT NOT NULL,               -- forms of this session carry it back
    created_at TEXT NOT NULL,
    last_seen  TEXT NOT NULL,               -- idle expiry counts from here
    expires_at TEXT NOT NULL                -- absolute expiry
);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);
