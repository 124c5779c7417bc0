-- Accounts, devices and login sessions.

CREATE TABLE users (
    -- Small integer id for the original /api surface, which names users by number.
    id            bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    user_id       text PRIMARY KEY,            -- @localpart:server_name
    localpart     text NOT NULL,
    password_hash text,
    email         text NOT NULL DEFAULT '',
    is_moderator  boolean NOT NULL DEFAULT false,
    displayname   text,
    avatar_url    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- Usernames are unique whatever their case.
CREATE UNIQUE INDEX users_localpart_ci ON users (lower(localpart));

CREATE TABLE devices (
    user_id      text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    device_id    text NOT NULL,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz,
    last_seen_ip text,
    PRIMARY KEY (user_id, device_id)
);

-- One row per live login. An access token names its session; deleting the
-- row revokes every token issued for it.
CREATE TABLE sessions (
    session_id         text PRIMARY KEY,
    user_id            text NOT NULL,
    device_id          text NOT NULL,
    refresh_token_hash text UNIQUE,
    created_at         timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (user_id, device_id) REFERENCES devices (user_id, device_id) ON DELETE CASCADE
);
CREATE INDEX sessions_by_device ON sessions (user_id, device_id);
